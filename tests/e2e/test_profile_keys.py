"""The non-extractable key recovered from a profile on disk is the one the page stored.

A session is linked in a persistent Chromium profile with the simulator, and the profile
is left in one of these states:

- closed cleanly (the key is in the LevelDB write-ahead log);
- Chromium killed with SIGKILL (the same, never closed);
- Chromium killed while it writes megabytes to IndexedDB (a torn log tail);
- closed, then opened once more and written to (the key moves into an ``.ldb`` table);
- copied while Chromium runs, into the login-state archive the workers save, then
  unpacked elsewhere.

``recover_keys`` reads the folder, and two proofs follow:

- the AES key derived from the recovered bytes the way the page derives it decrypts the
  page's ``wa-secrets`` to the linked device's id;
- a fresh, non-persistent browser context given only the recovered key (imported
  non-extractable), the localStorage values and the device id comes back linked with no
  QR code and no scan.
"""

from __future__ import annotations

import base64
import json
import os
import signal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from playwright.sync_api import Browser, BrowserContext, Playwright

from shared import login_state
from tests.e2e import test_simulator
from tests.e2e.stack import wait_until
from tests.e2e.test_simulator import MAIN, QR, link, local_storage, open_profile
from tests.simulator import SimulatorControl
from workers.browser.runtime import browser_processes
from workers.whatsapp.profile_keys import ProfileKeysUnreadable, recover_keys

pytestmark = pytest.mark.timeout(120)

# The simulator tests' module fixtures: one Playwright, one plain browser.
pw = test_simulator.pw
browser = test_simulator.browser

# Puts the recovered key (imported non-extractable) and the device id where the page
# looks for them, in the object stores the page itself would create.
SEED_IDB = """async ({key, deviceId}) => {
    const alg = key.algorithm;
    const raw = Uint8Array.from(atob(key.keyData), (c) => c.charCodeAt(0));
    const cryptoKey = await crypto.subtle.importKey(key.format, raw, alg, false, key.usages);
    const put = (name, store, k, value) => new Promise((ok, ko) => {
        const req = indexedDB.open(name, 1);
        req.onupgradeneeded = () => req.result.createObjectStore(store);
        req.onerror = () => ko(req.error);
        req.onsuccess = () => {
            const tx = req.result.transaction(store, "readwrite");
            tx.objectStore(store).put(value, k);
            tx.oncomplete = () => { req.result.close(); ok(); };
            tx.onerror = () => ko(tx.error);
        };
    });
    await put(key.source.database, key.source.store, key.source.key, cryptoKey);
    await put("wawc", "user", "device", deviceId);
    return cryptoKey.extractable;
}"""

SEED_LOCAL_STORAGE = "(items) => Object.entries(items).forEach(([k, v]) => localStorage.setItem(k, v))"


def link_in_profile(pw: Playwright, profile: Path, sim: SimulatorControl, url: str) -> tuple:
    """Link a session in a persistent profile; return the open context, device, localStorage."""
    ctx = open_profile(pw, profile)
    page = ctx.new_page()
    device = link(page, sim, url)
    return ctx, device, local_storage(page)


def kill_chromium(ctx: BrowserContext, profile: Path) -> None:
    """SIGKILL the profile's browser process, as a crashed worker would leave it."""
    pids = [pid for pid, folder in browser_processes().items() if Path(folder) == profile]
    assert pids, "no Chromium found for the profile"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    try:
        ctx.close()
    except Exception:  # noqa: BLE001 - the browser is gone; Playwright may say so
        pass


def recover_when_released(profile: Path, origin: str) -> list[dict]:
    """Chromium's helper processes may hold the LevelDB lock a moment after the kill."""

    def probe() -> tuple[list[dict]] | None:
        try:
            return (recover_keys(profile, origin),)
        except ProfileKeysUnreadable as exc:
            if "running Chromium" in str(exc):
                return None
            raise

    return wait_until(probe, 20, message="the profile's LevelDB lock to be released")[0]


def decrypt_secrets(key: dict, local_storage: dict) -> dict:
    """Derive the page's AES key from the recovered bytes and open ``wa-secrets``."""
    salt = base64.b64decode(local_storage["WebEncKeySalt"])
    material = base64.b64decode(key["keyData"])
    aes = HKDF(hashes.SHA256(), 32, salt, b"WhatsApp Web Secrets").derive(material)
    box = json.loads(local_storage["wa-secrets"])
    plain = AESGCM(aes).decrypt(base64.b64decode(box["iv"]), base64.b64decode(box["ct"]), None)
    return json.loads(plain)


# Fills another database of the origin with ~8 MB, past LevelDB's write buffer, so the
# memtable (holding the key replayed from the log) is flushed into an .ldb table.
FILL = """async () => {
    const req = indexedDB.open("filler", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("blobs");
    const db = await new Promise((ok) => (req.onsuccess = () => ok(req.result)));
    for (let t = 0; t < 100; t++) {  // many small commits: a kill lands between or inside them
        const tx = db.transaction("blobs", "readwrite");
        for (let i = 0; i < 10; i++) {
            const bytes = crypto.getRandomValues(new Uint8Array(6000));
            tx.objectStore("blobs").put(btoa(String.fromCharCode(...bytes)), t * 10 + i);
        }
        await new Promise((ok, ko) => { tx.oncomplete = ok; tx.onerror = () => ko(tx.error); });
    }
    db.close();
}"""


def reopen(pw: Playwright, profile: Path, url: str) -> None:
    """Open the linked profile once more and write a lot: the key moves into an ``.ldb`` table."""
    ctx = open_profile(pw, profile)
    try:
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_selector(MAIN, timeout=20_000)
        page.evaluate(FILL)
    finally:
        ctx.close()


def kill_mid_write(ctx: BrowserContext, profile: Path) -> None:
    """Start writing ~8 MB to IndexedDB and SIGKILL Chromium once the log is growing."""
    ctx.pages[-1].evaluate(f"() => {{ ({FILL})(); }}")  # not awaited: it runs on
    folder = profile / "Default" / "IndexedDB"
    wait_until(lambda: sum(p.stat().st_size for p in folder.glob("*/*.log")) > 1_000_000, 60, 0.02)
    kill_chromium(ctx, profile)


@pytest.mark.parametrize("ending", ["close", "kill", "killed_mid_write", "reopened", "archived"])
def test_recovered_key_opens_the_session_in_a_fresh_context(
    ending: str, pw: Playwright, browser: Browser, sim: SimulatorControl, simulator_server, tmp_path: Path
) -> None:
    url = simulator_server.url
    profile = tmp_path / "profile"
    ctx, device, stored = link_in_profile(pw, profile, sim, url)
    if ending == "kill":
        kill_chromium(ctx, profile)
    elif ending == "killed_mid_write":
        kill_mid_write(ctx, profile)
    elif ending == "archived":  # the login-state archive a worker saves while Chromium runs
        blob = login_state.pack(profile, ["archive-secret"])
        ctx.close()
        profile = tmp_path / "restored"
        login_state.unpack(blob, profile, ["archive-secret"])
    else:
        ctx.close()
    if ending == "reopened":
        reopen(pw, profile, url)
        assert list((profile / "Default" / "IndexedDB").glob("*/*.ldb")), "no LevelDB table written"

    keys = recover_when_released(profile, url)
    assert len(keys) == 1, [k["source"] for k in keys]
    key = keys[0]
    assert key["source"] == {"database": "wawc_db_enc", "store": "keys", "key": "enc"}
    assert (key["format"], key["algorithm"], key["usages"]) == ("raw", "HKDF", ["deriveKey"])
    assert len(base64.b64decode(key["keyData"])) == 32
    assert decrypt_secrets(key, stored)["device_id"] == device["device_id"]

    fresh = browser.new_context()
    try:
        page = fresh.new_page()
        page.goto(url + "api/config")  # same origin, no simulator boot yet
        assert page.evaluate(SEED_IDB, {"key": key, "deviceId": device["device_id"]}) is False
        page.evaluate(SEED_LOCAL_STORAGE, stored)
        pairings = len(sim.state()["pairings"])
        page.goto(url)
        page.wait_for_selector(MAIN, timeout=20_000)
        assert page.locator(QR).count() == 0
        assert len(sim.state()["pairings"]) == pairings  # no new QR was even asked for
    finally:
        fresh.close()


def test_a_profile_open_in_chromium_is_refused(
    pw: Playwright, sim: SimulatorControl, simulator_server, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    ctx, _, _ = link_in_profile(pw, profile, sim, simulator_server.url)
    try:
        with pytest.raises(ProfileKeysUnreadable, match="running Chromium"):
            recover_keys(profile, simulator_server.url)
    finally:
        ctx.close()
    assert len(recover_keys(profile, simulator_server.url)) == 1
    assert recover_keys(profile, "https://web.whatsapp.com/") == []


# Stores keys of several shapes from a real page, with what each one produced, so the
# recovered material can be checked by use: decrypt, verify, sign, derive.
STORE_ZOO = """async () => {
    const enc = new TextEncoder(), msg = enc.encode("zaphub");
    const s = crypto.subtle, b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
    const iv = new Uint8Array(12);
    const aes = await s.generateKey({name: "AES-GCM", length: 256}, false, ["encrypt", "decrypt"]);
    const hmac = await s.generateKey({name: "HMAC", hash: "SHA-256"}, false, ["sign", "verify"]);
    const ec = await s.generateKey({name: "ECDSA", namedCurve: "P-256"}, false, ["sign", "verify"]);
    const pbkdf2 = await s.importKey("raw", enc.encode("pass"), "PBKDF2", false, ["deriveBits"]);
    const salt = new Uint8Array(16);
    const req = indexedDB.open("zoo", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("k");
    const db = await new Promise((ok) => (req.onsuccess = () => ok(req.result)));
    const tx = db.transaction("k", "readwrite");
    const store = tx.objectStore("k");
    store.put(aes, "aes");
    store.put({nested: [hmac]}, "hmac");
    store.put(ec.privateKey, "ec-private");
    store.put(ec.publicKey, "ec-public");
    store.put(pbkdf2, "pbkdf2");
    await new Promise((ok) => (tx.oncomplete = ok));
    db.close();
    return {
        aes: b64(await s.encrypt({name: "AES-GCM", iv}, aes, msg)),
        hmac: b64(await s.sign("HMAC", hmac, msg)),
        ecdsa: b64(await s.sign({name: "ECDSA", hash: "SHA-256"}, ec.privateKey, msg)),
        pbkdf2: b64(await s.deriveBits({name: "PBKDF2", hash: "SHA-256", salt, iterations: 10}, pbkdf2, 128)),
    };
}"""

# Imports every recovered record as it is and checks it does what the original did.
USE_ZOO = """async ({keys, made}) => {
    const enc = new TextEncoder(), msg = enc.encode("zaphub"), s = crypto.subtle;
    const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
    const k = {};
    for (const r of keys) {
        k[r.source.key] = await s.importKey(r.format, bytes(r.keyData), r.algorithm, false, r.usages);
    }
    const ecdsa = {name: "ECDSA", hash: "SHA-256"};
    const fresh = await s.sign(ecdsa, k["ec-private"], msg);
    return {
        aes: new TextDecoder().decode(
            await s.decrypt({name: "AES-GCM", iv: new Uint8Array(12)}, k.aes, bytes(made.aes))),
        hmac: await s.verify("HMAC", k.hmac, bytes(made.hmac), msg),
        ecdsa: await s.verify(ecdsa, k["ec-public"], bytes(made.ecdsa), msg)
            && await s.verify(ecdsa, k["ec-public"], fresh, msg),
        pbkdf2: b64(await s.deriveBits(
            {name: "PBKDF2", hash: "SHA-256", salt: new Uint8Array(16), iterations: 10}, k.pbkdf2, 128)),
    };
}"""


def test_keys_of_other_shapes_come_back_usable(
    pw: Playwright, browser: Browser, simulator_server, tmp_path: Path
) -> None:
    url = simulator_server.url + "api/config"  # the simulator's origin, no page script
    profile = tmp_path / "profile"
    ctx = open_profile(pw, profile)
    page = ctx.new_page()
    page.goto(url)
    made = page.evaluate(STORE_ZOO)
    ctx.close()

    keys = recover_keys(profile, simulator_server.url)
    shapes = {k["source"]["key"]: (k["format"], k["algorithm"], k["usages"]) for k in keys}
    assert shapes == {
        "aes": ("raw", {"name": "AES-GCM"}, ["encrypt", "decrypt"]),
        "hmac": ("raw", {"name": "HMAC", "hash": "SHA-256"}, ["sign", "verify"]),
        "ec-private": ("pkcs8", {"name": "ECDSA", "namedCurve": "P-256"}, ["sign"]),
        "ec-public": ("spki", {"name": "ECDSA", "namedCurve": "P-256"}, ["verify"]),
        "pbkdf2": ("raw", "PBKDF2", ["deriveBits"]),
    }
    fresh = browser.new_context()
    try:
        page = fresh.new_page()
        page.goto(url)
        used = page.evaluate(USE_ZOO, {"keys": keys, "made": made})
    finally:
        fresh.close()
    assert used == {"aes": "zaphub", "hmac": True, "ecdsa": True, "pbkdf2": made["pbkdf2"]}
