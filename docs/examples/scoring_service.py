"""A downstream scoring service that hot-swaps its model from the model-update topic.

The workers keep learning; this service only scores. It follows the model-update topic with
:class:`streamer.ModelSubscriber`, which verifies each update (HMAC signature, SHA-256, signing
key, newer version) before it unpickles it with a restricted unpickler, and swaps the model it
serves without a restart. A refused update (unsigned, tampered, signed with another key, older)
is logged, and the last good model keeps serving.

Run it beside a deployment (same brokers, same signing key), here beside ``streamer demo``,
whose stream has the features ``x1``, ``x2`` and ``noise`` and whose models are signed with the
demo's public key (a deployment has its own)::

    STREAMER_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:PORT \\
    STREAMER_SECURITY__SIGNING_KEY=streamer-demo-key-not-a-secret \\
    python docs/examples/scoring_service.py --port 8080

    curl -s localhost:8080/predict -d '{"x": {"x1": 3.1, "x2": 7.4, "noise": 1.0}}'
    {"prediction": true, "proba": {"false": 0.12, "true": 0.88}, "model": "champion/events/0",
     "version": 2, "revision": 395}

Classes are written as the predictions topic writes them (JSON: ``true``, ``"yes"``, ``3``),
so a client reads both the same way. A request that is not ``{"x": {feature: value, …}}``
gets a 400 saying why; before the first model arrives, a 503.

The model of one input partition is served (``--key``, default: the first one seen); keyed
streams with a model per partition would route each request to its key's model instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from typing import Any
from wsgiref.simple_server import make_server

from streamer import ModelSubscriber, ModelUpdate
from streamer.settings import load_settings

log = logging.getLogger("scoring_service")


class NoModel(Exception):
    """No verified model has arrived yet."""


class Scorer:
    """Scores with the newest verified model of one key, swapping it as updates arrive."""

    def __init__(self, settings: Any, key: str | None = None) -> None:
        self.key = key
        self.model: Any = None
        self.update: ModelUpdate | None = None
        self.swaps = 0
        self._lock = threading.Lock()
        self._subscriber = ModelSubscriber(settings, from_beginning=True)
        self._thread = threading.Thread(target=self._follow, name="model-updates", daemon=True)

    def start(self) -> Scorer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._subscriber.close()
        self._thread.join(timeout=10)

    def _follow(self) -> None:
        for accepted in self._subscriber:
            update = accepted.update
            if self.key is None:
                self.key = update.key
            if update.key != self.key:
                continue
            with self._lock:  # the swap: requests see the old model or the new, never half
                self.model, self.update = accepted.model, update
                self.swaps += 1
            log.info(
                "now serving %s v%d (revision %d)", update.key, update.version, update.revision
            )

    def predict(self, x: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            model, update = self.model, self.update
        if model is None or update is None:
            raise NoModel("no model received yet")
        if hasattr(model, "predict_proba_one"):
            proba = model.predict_proba_one(x)
            prediction = max(proba, key=proba.get) if proba else None
            proba = {_class_key(k): v for k, v in proba.items()}
        else:
            prediction, proba = model.predict_one(x), None
        return {
            "prediction": prediction,
            "proba": proba,
            "model": update.key,
            "version": update.version,
            "revision": update.revision,
        }


def _class_key(k: Any) -> str:
    """A class as a JSON object key, as the predictions topic writes it (``True`` -> ``true``)."""
    if isinstance(k, str):
        return k
    if k is None or isinstance(k, (bool, int, float)):
        return json.dumps(k)
    return str(k)


class BadRequest(ValueError):
    """A request that is not ``{"x": {feature: value, …}}``."""


def features(body: bytes) -> dict[str, Any]:
    """The features of a request body, or :class:`BadRequest` saying what is wrong."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or "x" not in doc:
        raise BadRequest('expected {"x": {"feature": value, ...}}')
    x = doc["x"]
    if not isinstance(x, dict):
        raise BadRequest(f'"x" must be an object of features, got {type(x).__name__}')
    for name, value in x.items():
        if isinstance(value, (dict, list)):
            raise BadRequest(
                f"feature {name!r} must be a number, a string, a boolean or null, "
                f"got {type(value).__name__}"
            )
    return x


def app(scorer: Scorer) -> Any:
    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO") != "/predict" or environ.get("REQUEST_METHOD") != "POST":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b'POST /predict {"x": {...}}\n']
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body, status = scorer.predict(features(environ["wsgi.input"].read(size))), "200 OK"
        except NoModel as exc:
            body, status = {"error": str(exc)}, "503 Service Unavailable"
        except (ValueError, TypeError, LookupError) as exc:  # BadRequest, or the model refused
            body, status = {"error": f"bad request: {exc}"}, "400 Bad Request"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode() + b"\n"]

    return wsgi


def main() -> None:
    p = argparse.ArgumentParser(description="Score with the newest verified model.")
    p.add_argument("-c", "--config", help="streamer settings (brokers, topic, signing key)")
    p.add_argument("--key", help="model key to serve, e.g. champion/events/0")
    p.add_argument("--port", type=int, default=8080)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scorer = Scorer(load_settings(args.config), key=args.key).start()
    with make_server("0.0.0.0", args.port, app(scorer)) as server:
        log.info("scoring on :%d", args.port)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    scorer.close()


if __name__ == "__main__":
    main()
