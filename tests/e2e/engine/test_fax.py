"""FAXRECEIVER (DP-2, FAX-1, issue 5 item 4): a call to a fax number is answered and its audio
goes to a spandsp fax receiver on the caller's own relay socket; the fax lands in the call
record (``faxes`` row) as a PDF. The caller is a :class:`.pbx_harness.StackCaller`: a
SipStack UAC with Digest, whose media endpoint is a spandsp ``FaxSender`` (or a listener)
over real RTP in real time -- the PBX's receiver runs on the wall clock like a phone call."""

from __future__ import annotations

from .pbx_harness import Listener, Pbx, StackCaller, build_fax_client, faxes, tone_ratio

BUILD = build_fax_client


def test_fax_number_answers_with_a_fax_receiver_and_records_a_failed_fax(pbx: Pbx) -> None:
    """FAX-1 wiring: the FAXRECEIVER step answers (200, billing starts) and the caller hears
    the receiver's CED answer tone (2100 Hz, T.30 §5.3.2) from its own media address; the
    caller hangs up after 2 s without sending a fax: the call record has a ``faxes`` row
    with status ``failed``, no page and T.30's error, and the call is answered."""
    alice = StackCaller(pbx, "alice")
    pbx.thread.run(alice.start())
    assert pbx.thread.run(alice.call("600")) == 200
    listener = Listener()
    pbx.thread.run(alice.media(listener, 2.0, lambda: False), timeout=10)
    pbx.call(alice.hangup)
    pbx.wait_idle()
    pbx.thread.run(pbx.runtime.cdr.flush())
    pbx.thread.run(alice.close())
    assert tone_ratio(listener.samples()[-8000:], 2100.0, 1000.0) > 100
    [(call, legs, events)] = pbx.records()
    assert call.outcome == "answered"
    assert call.answer_ms is not None
    assert call.steps == [1]
    kinds = [e.kind for e in events]
    assert "fax" in kinds
    pbx.wait_until(lambda: len(faxes(pbx)) == 1, timeout=5)
    [row] = faxes(pbx)
    assert (row.status, row.pages, row.pdf_path) == ("failed", 0, None)
    assert row.error  # spandsp's text for the T.30 completion code
    assert legs[0].quality is not None
    assert legs[0].quality["rx_packets"] >= 90  # the 2 s the caller sent
