"""Dialplans (PRODUCT.md §3): the pure model, schedules and DP-5 validation.

No I/O and no clock: callers pass the time and a resolver for target references.
The interpreter (DP-4) and the simulator (DP-6) build on this package.
"""

from cloudpbx.dialplan.model import (
    ACTION_TARGET,
    ALL_DAYS,
    CLASSIFIER_FOUND_STEP,
    CLASSIFIER_NOT_FOUND_STEP,
    ENTRY_LEVEL,
    STEP_PARAMS,
    WHOLE_DAY,
    Action,
    Condition,
    DatedException,
    Dialplan,
    ParamValue,
    Schedule,
    Step,
    TargetKind,
    TargetRef,
    TimeRange,
    Transition,
)
from cloudpbx.dialplan.schedule import matches, opening, to_local
from cloudpbx.dialplan.validate import (
    MAX_TIMEOUT,
    Issue,
    IssueCode,
    Resolver,
    Severity,
    TargetStatus,
    has_errors,
    references,
    validate,
)

__all__ = [
    "ACTION_TARGET",
    "ALL_DAYS",
    "CLASSIFIER_FOUND_STEP",
    "CLASSIFIER_NOT_FOUND_STEP",
    "ENTRY_LEVEL",
    "MAX_TIMEOUT",
    "STEP_PARAMS",
    "WHOLE_DAY",
    "Action",
    "Condition",
    "DatedException",
    "Dialplan",
    "Issue",
    "IssueCode",
    "ParamValue",
    "Resolver",
    "Schedule",
    "Severity",
    "Step",
    "TargetKind",
    "TargetRef",
    "TargetStatus",
    "TimeRange",
    "Transition",
    "has_errors",
    "matches",
    "opening",
    "references",
    "to_local",
    "validate",
]
