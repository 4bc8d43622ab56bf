"""Linking by phone number, piece by piece: page knowledge, driver, simulator, rules, schema."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from api.schemas.sessions import PairingCodeRequestSchema
from shared.errors import InvalidInput
from shared.jobs import TASK_NAMES, JobKind
from shared.services.session_events import event_changes
from shared.validation import check_phone_number
from tests.simulator.state import LINK_CODE_TTL, SimError, SimState
from workers.whatsapp import page as wa
from workers.whatsapp.driver import PageDriver

PHONE = "5511999990001"


# -- page knowledge -----------------------------------------------------------------------
def test_the_injected_script_calls_what_whatsapp_web_js_calls():
    js = wa.REQUEST_PAIRING_CODE_JS
    for piece in (
        "window.require(name)",
        '"WAWebAltDeviceLinkingApi"',
        '"WAWebSocketModel"',
        'setPairingType("ALT_DEVICE_LINKING")',
        "await PairingCodeLinkUtils.initializeAltDeviceLinking()",
        "startAltLinkingFlow(phoneNumber, showNotification)",
        'window["onCodeReceivedEvent"]',
        "window.codeInterval = setInterval(",
        '["UNPAIRED", "UNPAIRED_IDLE"]',
        "}, intervalMs);",
    ):
        assert piece in js, piece
    assert wa.PAIRING_BINDING == "onCodeReceivedEvent"
    assert wa.PAIRING_CODE_INTERVAL == 180.0  # requestPairingCode's intervalMs = 180000
    assert "'pair_code'" in wa.PROBE_JS and wa.SEL_LINK_CODE in wa.PROBE_JS


@pytest.mark.parametrize(
    "raw,code",
    [
        ("ABCD1234", "ABCD1234"),
        ("abcd-1234", "ABCD1234"),
        ("ABCD 1234", "ABCD1234"),
        ("ABC1234", None),
        (None, None),
    ],
)
def test_codes_are_eight_uppercase_alphanumerics(raw, code):
    assert wa.pairing_code(raw) == code


@pytest.mark.parametrize(
    "raw,words",
    [
        (
            {"error": "module", "module": "WAWebAltDeviceLinkingApi"},
            "module WAWebAltDeviceLinkingApi missing",
        ),
        ({"error": "refused", "message": "invalid phone number"}, "refused to link by phone number: invalid"),
        ({"error": "binding"}, "binding"),
        ({"code": "nope"}, "without a valid pairing code"),
        ("ABCD1234", "unexpected answer"),
    ],
)
def test_a_page_that_gives_no_code_is_a_readable_refusal(raw, words):
    with pytest.raises(wa.PairingRefused, match=words):
        wa.parse_pairing_answer(raw)
    assert wa.parse_pairing_answer({"code": "ABCD-1234"}) == "ABCD1234"


# -- driver -------------------------------------------------------------------------------
def driver(max_rotations: int = 2) -> tuple[PageDriver, list]:
    events: list = []
    return PageDriver(
        "s1", page=None, emit=lambda n, p: events.append((n, p)), qr_max_rotations=max_rotations
    ), events


def test_the_code_screen_waits_without_counting_qr_rotations():
    d, events = driver()
    assert d.step(wa.Screen(wa.QR, ref="2@a")) is None
    for _ in range(5):
        assert d.step(wa.Screen(wa.PAIR_CODE)) is None
    assert events == [("qr", {"qr": "2@a", "rotation": 1})]


def test_unused_codes_end_like_unscanned_qr_codes():
    d, _ = driver(max_rotations=2)
    for _ in range(2):
        d.code_received()
        assert d.step(wa.Screen(wa.PAIR_CODE)) is None
    d.code_received()
    assert d.step(wa.Screen(wa.PAIR_CODE)) == "pairing code timeout"


def test_the_code_screen_after_being_linked_is_a_logout():
    d, events = driver()
    d.step(wa.Screen(wa.MAIN, phone_number=PHONE, push_name="Loja"))
    assert [n for n, _ in events] == ["authenticated", "ready"]
    assert d.step(wa.Screen(wa.PAIR_CODE)) == "logout"


# -- simulator ----------------------------------------------------------------------------
def test_the_right_code_links_like_a_scan_and_a_wrong_one_changes_nothing():
    sim = SimState()
    pairing = sim.create_pairing("page-1")
    view = sim.start_link_code("page-1", PHONE)
    assert wa.PAIRING_CODE_RE.match(view["code"]) and view["state"] == "waiting"
    assert sim.snapshot()["pairings"][0]["state"] == "cancelled"  # the QR is gone from the page
    with pytest.raises(SimError) as wrong:
        sim.pair(PHONE, "0000AAAA" if view["code"] != "0000AAAA" else "1111BBBB")
    assert wrong.value.status == 400
    with pytest.raises(SimError):
        sim.pair("5511999990002", view["code"])  # another phone typing it
    assert sim.link_code_status("page-1")["state"] == "waiting"

    linked = sim.pair(PHONE, view["code"][:4] + "-" + view["code"][4:], push_name="Loja")
    assert linked["phone"] == PHONE and linked["wid"] == f"{PHONE}:1@c.us"
    status = sim.link_code_status("page-1")
    assert status["state"] == "linked"
    assert status["device"]["wid"] == linked["wid"] and status["device"]["push_name"] == "Loja"
    assert sim.pairing_status(pairing["id"], "page-1")["state"] == "cancelled"


def test_a_renewed_code_replaces_the_old_one_and_codes_expire_on_the_scaled_clock(monkeypatch):
    codes = iter(["FIRST111", "SECOND22"])
    monkeypatch.setattr("tests.simulator.state.new_link_code", lambda: next(codes))
    sim = SimState(clock_scale=1000.0)
    assert sim.start_link_code("page-1", PHONE)["code"] == "FIRST111"
    assert sim.start_link_code("page-1", PHONE)["code"] == "SECOND22"
    with pytest.raises(SimError) as old:
        sim.pair(PHONE, "FIRST111")
    assert old.value.status == 410
    assert sim.snapshot()["link_codes"][0]["codes_issued"] == 2

    # 180 virtual seconds at 1000x are 0.18 real ones: the clock scales a code's life.
    assert sim.link_code_status("page-1")["expires_in"] <= LINK_CODE_TTL
    sim.clock._base_virtual += LINK_CODE_TTL  # the code's whole life passes
    assert sim.link_code_status("page-1")["state"] == "expired"
    with pytest.raises(SimError) as expired:
        sim.pair(PHONE, "SECOND22")
    assert expired.value.status == 410


def test_a_code_needs_a_phone_number():
    sim = SimState()
    for phone in ("", "+5511999990001", "1234567", "1" * 16):
        with pytest.raises(SimError) as bad:
            sim.start_link_code("page-1", phone)
        assert bad.value.status == 400


# -- rules, schema, job, event ------------------------------------------------------------
@pytest.mark.parametrize("phone", ["12345678", PHONE, "1" * 15])
def test_phone_numbers_of_8_to_15_digits_pass(phone):
    assert check_phone_number(phone) == phone
    assert PairingCodeRequestSchema().load({"phone": phone}) == {"phone": phone}


@pytest.mark.parametrize(
    "phone", ["1234567", "1" * 16, "+5511999990001", "5511 99999 0001", "55119999900a", 5511999990001]
)
def test_other_phones_are_refused_naming_the_field(phone):
    with pytest.raises(InvalidInput) as err:
        check_phone_number(phone)
    assert err.value.field == "phone"
    with pytest.raises(ValidationError) as invalid:
        PairingCodeRequestSchema().load({"phone": phone})
    assert "phone" in invalid.value.messages


def test_the_pair_job_and_its_event():
    assert JobKind.PAIR.value == "pair" and TASK_NAMES[JobKind.PAIR] == "zaphub.session.pair"
    assert event_changes("pairing_code", {"code": "ABCD1234", "phone": PHONE}) == {
        "status": "QRCODE",
        "qr_code": None,
    }
