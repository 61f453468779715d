// What the UI shows to whom (ADM-1, ADM-3). The server checks every call (api/rbac.py); this
// mirror of its policies only hides what would be refused, so a menu never leads to a 403.
// A policy action is allowed when the user holds any of its rights; "client-scoped" rights
// (users.*, own.*, extra.telemarketing) apply only inside the user's own client.

export type Action = "read" | "create" | "update" | "delete";
export type PolicyName =
  | "client_config"
  | "number_config"
  | "internal_numbers"
  | "external_numbers"
  | "campaigns"
  | "cdr"
  | "system"
  | "tariffs"
  | "clients"
  | "client_users"
  | "audit"
  | "client_billing"
  | "active_calls";

type Policy = Record<Action, string[]>;

const CLIENT_CONFIG: Policy = {
  read: ["system.manage", "clients.view_settings", "users.view_settings"],
  create: ["system.manage", "clients.edit", "users.add"],
  update: ["system.manage", "clients.edit", "users.edit"],
  delete: ["system.manage", "clients.edit", "users.delete"],
};

const NUMBER_CONFIG: Policy = {
  ...CLIENT_CONFIG,
  read: [...CLIENT_CONFIG.read, "own.view_settings"],
  update: [...CLIENT_CONFIG.update, "own.change_settings"],
};

const SYSTEM: Policy = {
  read: ["system.manage"],
  create: ["system.manage"],
  update: ["system.manage"],
  delete: ["system.manage"],
};

const TELEMARKETING = ["system.manage", "extra.telemarketing"];

export const POLICIES: Record<PolicyName, Policy> = {
  client_config: CLIENT_CONFIG,
  number_config: NUMBER_CONFIG,
  internal_numbers: { ...CLIENT_CONFIG, read: NUMBER_CONFIG.read },
  external_numbers: {
    read: NUMBER_CONFIG.read,
    create: ["system.manage", "clients.edit"],
    update: CLIENT_CONFIG.update,
    delete: ["system.manage", "clients.edit"],
  },
  campaigns: {
    read: CLIENT_CONFIG.read,
    create: TELEMARKETING,
    update: TELEMARKETING,
    delete: TELEMARKETING,
  },
  cdr: {
    read: ["system.manage", "clients.view_cdr", "users.view_cdr", "own.view_cdr"],
    create: [],
    update: [],
    delete: [],
  },
  system: SYSTEM,
  tariffs: { ...SYSTEM, read: ["system.manage", "clients.view_settings", "clients.edit"] },
  clients: {
    read: ["system.manage", "clients.view_settings", "clients.edit", "users.view_settings", "own.view_settings"],
    create: ["system.manage", "clients.add"],
    update: ["system.manage", "clients.edit"],
    delete: ["system.manage", "clients.delete"],
  },
  // ADM-5/ADM-6 (rbac.CLIENT_BILLING): the provider sets a client's billing account; the
  // client's administrator reads it.
  client_billing: {
    read: ["system.manage", "clients.view_settings", "clients.edit", "users.view_settings"],
    create: ["system.manage", "clients.edit"],
    update: ["system.manage", "clients.edit"],
    delete: ["system.manage", "clients.edit"],
  },
  client_users: {
    read: ["system.manage", "clients.view_settings", "users.view_settings"],
    create: ["system.manage", "clients.edit", "users.add"],
    update: ["system.manage", "clients.edit", "users.edit"],
    delete: ["system.manage", "clients.edit", "users.delete"],
  },
  // AC-1 (api/routes/calls.py ACTIVE_CALLS): seeing calls, and hanging up with "manage calls".
  active_calls: {
    read: ["system.manage", "clients.view_cdr", "clients.manage_calls", "users.view_cdr", "users.manage_calls", "own.view_cdr", "own.manage_calls"],
    create: [],
    update: ["system.manage", "clients.manage_calls", "users.manage_calls", "own.manage_calls"],
    delete: [],
  },
  audit: {
    read: ["system.manage", "clients.view_settings", "users.view_settings"],
    create: [],
    update: [],
    delete: [],
  },
};

export interface Principal {
  level: string;
  client_id: number | null;
  rights: string[];
}

/** Whether the principal may do `action` under `policy` (on its own client for client staff). */
export function can(me: Principal, policy: PolicyName, action: Action): boolean {
  const held = new Set(me.rights);
  return POLICIES[policy][action].some((r) => held.has(r));
}

/** Provider staff (no client of their own) pick the client whose sections they open. */
export function isProvider(me: Principal): boolean {
  return me.client_id === null;
}
