"""Flask routes of the WhatsApp Web simulator.

* ``/`` (and ``/send``): the WhatsApp Web page (HTML + JS from ``static/``).
* ``/api/...``: the JSON endpoints the page itself uses (503 while "offline").
* ``/_sim/...``: the out-of-band control API of the fake phone, for tests. For messages:
  ``POST /_sim/message {phone, from, body, name?, push_name?, quoted?}`` (a contact writes;
  answers ``{id, delivered_to}``), ``GET /_sim/sent?phone=`` (every message the page sent),
  ``POST /_sim/receipt {phone, message_id, ack: device|read|played}``, ``POST /_sim/read
  {phone, chat}`` (the recipient reads: all sent to it go READ), ``POST /_sim/fail {phone,
  message_id}`` (ack ERROR), ``POST /_sim/modules {missing: [names]}`` (pages loaded from
  then on lack those ``window.require`` modules). Linking by phone number: ``POST /_sim/pair
  {phone, code, push_name?}`` (the fake phone enters the code a page showed; 400 wrong code,
  410 expired or replaced).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request

from .state import ACK_ERROR, ACK_NAMES, SimError, SimState

STATIC_DIR = Path(__file__).parent / "static"


def create_app(state: SimState | None = None) -> Flask:
    """Build the Flask app around ``state`` (a fresh :class:`SimState` by default)."""
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    sim = state or SimState()
    app.extensions["wa_sim_state"] = sim

    @app.errorhandler(SimError)
    def _sim_error(err: SimError) -> tuple[Response, int]:
        return jsonify({"error": err.message}), err.status

    @app.after_request
    def _no_cache(resp: Response) -> Response:
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------------ page
    @app.get("/")
    @app.get("/send")
    def index() -> Response:
        html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        boot = json.dumps(
            {"clockScale": sim.clock.scale, "missingModules": sim.missing_modules, "keyMode": sim.key_mode}
        )
        return Response(html.replace("__BOOT_CONFIG__", boot), mimetype="text/html")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)

    @app.get("/api/config")
    def api_config() -> Response:
        return jsonify(sim.page_config() | {"missing_modules": sim.missing_modules})

    @app.post("/api/pairing")
    def api_pairing_new() -> Response:
        return jsonify(sim.create_pairing(str(body().get("page_id", ""))))

    @app.get("/api/pairing/<pairing_id>")
    def api_pairing(pairing_id: str) -> Response:
        return jsonify(sim.pairing_status(pairing_id, request.args.get("page_id", "")))

    @app.post("/api/link-code")
    def api_link_code_new() -> Response:
        data = body()
        return jsonify(sim.start_link_code(str(data.get("page_id", "")), str(data.get("phone", ""))))

    @app.get("/api/link-code")
    def api_link_code() -> Response:
        return jsonify(sim.link_code_status(request.args.get("page_id", "")))

    def creds() -> tuple[str, str, str, dict[str, Any]]:
        data = body()
        return (
            str(data.get("device_id", "")),
            str(data.get("token", "")),
            str(data.get("page_id", "")),
            data,
        )

    @app.post("/api/login")
    def api_login() -> Response:
        device_id, token, page_id, data = creds()
        return jsonify(sim.login(device_id, token, page_id, int(data.get("since") or 0)))

    @app.post("/api/poll")
    def api_poll() -> Response:
        device_id, token, page_id, data = creds()
        return jsonify(sim.poll(device_id, token, page_id, int(data.get("since") or 0)))

    @app.post("/api/takeover")
    def api_takeover() -> Response:
        device_id, token, page_id, _ = creds()
        return jsonify(sim.takeover(device_id, token, page_id))

    @app.post("/api/send")
    def api_send() -> Response:
        device_id, token, page_id, data = creds()
        to, text = str(data.get("to", "")), str(data.get("body", ""))
        if not to or not text:
            raise SimError(400, "to and body required")
        msg_id = str(data.get("id") or "") or None
        quoted = str(data.get("quoted") or "") or None
        return jsonify(sim.send(device_id, token, page_id, to, text, msg_id, quoted))

    # --------------------------------------------------------------- control
    @app.get("/_sim/state")
    def sim_state() -> Response:
        return jsonify(sim.snapshot())

    @app.post("/_sim/scan")
    def sim_scan() -> Response:
        data = body()
        if not data.get("ref"):
            raise SimError(400, "ref required")
        return jsonify(sim.scan(str(data["ref"]), data.get("phone"), data.get("push_name")))

    @app.post("/_sim/pair")
    def sim_pair() -> Response:
        data = body()
        required(data, "phone", "code")
        return jsonify(sim.pair(str(data["phone"]), str(data["code"]), data.get("push_name")))

    @app.post("/_sim/logout")
    def sim_logout() -> Response:
        data = body()
        return jsonify({"unlinked": sim.logout(data.get("phone"), data.get("device_id"))})

    @app.post("/_sim/message")
    def sim_message() -> Response:
        data = body()
        if not data.get("phone") or not data.get("from") or "body" not in data:
            raise SimError(400, "phone, from and body required")
        return jsonify(
            sim.push_message(
                str(data["phone"]),
                str(data["from"]).split("@", 1)[0],
                str(data["body"]),
                data.get("name"),
                data.get("push_name"),
                data.get("quoted"),
            )
        )

    @app.get("/_sim/messages")
    def sim_messages() -> Response:
        return jsonify(sim.messages(request.args.get("phone"), request.args.get("device_id")))

    @app.get("/_sim/sent")
    def sim_sent() -> Response:
        return jsonify(sim.sent(request.args.get("phone"), request.args.get("device_id")))

    def required(data: dict[str, Any], *names: str) -> None:
        missing = [n for n in names if not data.get(n)]
        if missing:
            raise SimError(400, f"{', '.join(missing)} required")

    @app.post("/_sim/receipt")
    def sim_receipt() -> Response:
        data = body()
        required(data, "phone", "message_id", "ack")
        ack = ACK_NAMES.get(str(data["ack"]).lower())
        if ack is None:
            raise SimError(400, f"ack must be one of {sorted(ACK_NAMES)}")
        return jsonify(sim.receipt(str(data["phone"]), str(data["message_id"]), ack))

    @app.post("/_sim/read")
    def sim_read() -> Response:
        data = body()
        required(data, "phone", "chat")
        return jsonify(sim.read_chat(str(data["phone"]), str(data["chat"])))

    @app.post("/_sim/fail")
    def sim_fail() -> Response:
        data = body()
        required(data, "phone", "message_id")
        return jsonify(sim.receipt(str(data["phone"]), str(data["message_id"]), ACK_ERROR))

    @app.post("/_sim/modules")
    def sim_modules() -> Response:
        missing = body().get("missing") or []
        if not isinstance(missing, list):
            raise SimError(400, "missing must be a list of module names")
        sim.set_missing_modules(missing)
        return jsonify({"missing": sim.missing_modules})

    @app.post("/_sim/key-mode")
    def sim_key_mode() -> Response:
        sim.set_key_mode(str(body().get("mode", "")))
        return jsonify({"mode": sim.key_mode})

    @app.post("/_sim/conflict")
    def sim_conflict() -> Response:
        data = body()
        return jsonify({"devices": sim.conflict(data.get("phone"), data.get("device_id"))})

    @app.post("/_sim/offline")
    def sim_offline() -> Response:
        sim.set_offline(bool(body().get("offline", True)))
        return jsonify({"offline": sim.offline})

    @app.post("/_sim/clock")
    def sim_clock() -> Response:
        try:
            scale = float(body().get("scale", 1))
        except (TypeError, ValueError) as exc:
            raise SimError(400, "scale must be a number") from exc
        sim.set_clock(scale)
        return jsonify({"clock_scale": sim.clock.scale})

    @app.post("/_sim/reset")
    def sim_reset() -> Response:
        sim.reset()
        return jsonify({"ok": True})

    return app
