"""FAX-1 end to end (issue 5 item 9: "a fax sent to a FAXRECEIVER number arrives as a PDF"):
a spandsp fax machine (:class:`~cloudpbx.media.fax.FaxSender` behind a
:class:`.pbx_harness.StackCaller`) calls the FAXRECEIVER number 600 over real RTP (PCMU, 20 ms,
real time: the PBX's receiver runs on the wall clock) and sends a short page. 18-25 s of
T.30 in real time, so it is marked slow (``pytest -m slow``); ``test_fax.py`` proves the
action's wiring in the default run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudpbx.media.fax import FaxSender, write_bilevel_tiff

from .pbx_harness import Pbx, StackCaller, build_fax_client, faxes, short_page, start_pbx


@pytest.fixture
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    running = start_pbx(tmp_path_factory.mktemp("pbx"), build_fax_client)
    yield running
    running.stop()
    running.thread.close()


@pytest.mark.slow
def test_fax_arrives_as_pdf(pbx: Pbx, tmp_path: Path) -> None:
    """FAX-1 end to end: a spandsp fax machine calls 600 over RTP (PCMU, real time) and
    sends one page; the call record gets a ``faxes`` row, status ``received``, 1 page, the
    sender's ident, and the PDF exists under ``recordings_dir/<client>/faxes/``."""
    alice = StackCaller(pbx, "alice")
    pbx.thread.run(alice.start())
    assert pbx.thread.run(alice.call("600")) == 200
    source = write_bilevel_tiff(tmp_path / "send.tif", [short_page()])
    sender = FaxSender(source, local_ident="+1 555 0100")
    pbx.thread.run(alice.media(sender, 60.0, lambda: sender.done), timeout=70)
    pbx.call(alice.hangup)  # a fax machine hangs up after its DCN
    sent = sender.close()
    assert sent.ok, sent
    pbx.wait_idle(timeout=15)
    pbx.thread.run(alice.close())
    pbx.wait_until(lambda: len(faxes(pbx)) == 1, timeout=10)
    [row] = faxes(pbx)
    assert (row.status, row.pages, row.remote_ident) == ("received", 1, "+1 555 0100"), row
    assert row.pdf_path is not None
    pdf = Path(pbx.settings.recordings_dir or "") / row.pdf_path
    assert pdf.read_bytes().startswith(b"%PDF")
    [(call, _legs, _events)] = pbx.records()
    assert call.outcome == "answered"
