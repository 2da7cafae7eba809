"""Every way we adapt localstripe, in one place, outside the production path.

The production code follows the Stripe API version pinned by the SDK and
Stripe.js with the Payment Element. localstripe (1.15.10) predates both, so
the simulator is patched here -- and only here -- to behave like current
Stripe for the paths we use. ``DIFFERENCES`` names each one; a test checks
every entry against the running simulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import stripe
from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

# The test cards Stripe documents for declines, with the codes Stripe gives.
# https://docs.stripe.com/testing#declined-payments
DECLINE_CARDS: dict[str, tuple[str, str, str]] = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4100000000000019": ("card_declined", "fraudulent", "Your card was declined."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": (
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "4000000000000119": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card.",
    ),
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
}

DIFFERENCES: dict[str, str] = {
    "state_file": "state is kept in a file we choose, not one shared file in /tmp",
    "loopback_only": "listens on 127.0.0.1 only (localstripe binds every interface)",
    "allowed_payment_method_types": (
        "PaymentIntents accept allowed_payment_method_types (the pinned API's name "
        "for payment_method_types)"
    ),
    "confirm_with_payment_method": (
        "POST /v1/payment_intents/{id}/confirm accepts payment_method or "
        "payment_method_data, authenticated by publishable key + client secret as "
        "Stripe.js does (localstripe answers 500 Not implemented)"
    ),
    "decline_codes": (
        "Stripe's decline test cards fail at charge time with Stripe's code and "
        "decline_code (localstripe declines most only when attached, with no decline_code)"
    ),
    "latest_charge_is_id": (
        "PaymentIntent.latest_charge is an id unless expanded, and the removed "
        "`charges` list is gone"
    ),
    "event_api_version": "events carry the SDK's pinned API version",
    "payment_element_js": "the mock Stripe.js offers the Payment Element and confirmPayment",
    "client_retrieve": (
        "GET /v1/payment_intents/{id} with publishable key + client secret "
        "(Stripe.js's retrievePaymentIntent)"
    ),
    "webhook_on_start": "the webhook endpoint is registered at start (localstripe keeps none)",
}

STATIC = Path(__file__).parent / "static"


def _patch_state_file(state_path: Path) -> None:
    import pickle

    def dump_to_disk(self: resources.Store) -> None:
        tmp = state_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(state_path)

    def try_load_from_disk(self: resources.Store) -> None:
        try:
            with open(state_path, "rb") as f:
                old = pickle.load(f)  # noqa: S301 - our own file, written above
        except FileNotFoundError:
            return
        dict.clear(self)
        dict.update(self, old)

    resources.Store.dump_to_disk = dump_to_disk
    resources.Store.try_load_from_disk = try_load_from_disk


def _patch_payment_intent_types() -> None:
    original = resources.PaymentIntent.__init__

    def __init__(
        self: Any, *args: Any, allowed_payment_method_types: Any = None, **kwargs: Any
    ) -> None:
        if allowed_payment_method_types is not None:
            kwargs["payment_method_types"] = allowed_payment_method_types
        original(self, *args, **kwargs)
        self.payment_method_types = kwargs.get("payment_method_types") or ["card"]

    resources.PaymentIntent.__init__ = __init__


def _card_number(payment_method_id: str | None) -> str | None:
    if not payment_method_id:
        return None
    try:
        pm = resources.PaymentMethod._api_retrieve(payment_method_id)
    except UserError:
        return None
    return getattr(pm, "_card_number", None)


def _patch_declines() -> None:
    pm_cls = resources.PaymentMethod
    original_charging = pm_cls._charging_is_declined

    def _charging_is_declined(self: Any) -> bool:
        if self.type == "card" and self._card_number in DECLINE_CARDS:
            return True
        return bool(original_charging(self))

    pm_cls._charging_is_declined = _charging_is_declined

    def _set_auth_failure(self: Any) -> None:
        self.status = "failed"
        code, decline, message = DECLINE_CARDS.get(
            _card_number(self.payment_method) or "",
            ("card_declined", "generic_decline", "Your card was declined."),
        )
        self.failure_code = code
        self.failure_message = message
        self._decline_code = decline

    resources.Charge._set_auth_failure = _set_auth_failure

    def _raise_failure(self: Any) -> None:
        raise UserError(
            402,
            self.failure_message,
            {
                "code": self.failure_code,
                "decline_code": getattr(self, "_decline_code", None),
                "charge": self.id,
            },
        )

    resources.Charge._raise_failure = _raise_failure

    def last_payment_error(self: Any) -> dict[str, Any] | None:
        if self._authentication_failed:
            return {
                "type": "card_error",
                "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication.",
            }
        charge = self.latest_charge
        if charge is not None and charge.status == "failed":
            return {
                "type": "card_error",
                "charge": charge.id,
                "code": charge.failure_code,
                "decline_code": getattr(charge, "_decline_code", None),
                "message": charge.failure_message,
            }
        return None

    resources.PaymentIntent.last_payment_error = property(last_payment_error)


def _patch_shapes() -> None:
    original_export = resources.PaymentIntent._export

    def _export(self: Any, expand: list[str] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = original_export(self, expand=expand)
        data.pop("charges", None)
        if not (expand and "latest_charge" in expand) and isinstance(
            data.get("latest_charge"), dict
        ):
            data["latest_charge"] = data["latest_charge"]["id"]
        return data

    resources.PaymentIntent._export = _export

    original_event_init = resources.Event.__init__

    def event_init(self: Any, type: str, data: Any) -> None:
        original_event_init(self, type, data)
        self.api_version = stripe.api_version
        if isinstance(self.data.get("object"), dict):
            self.data["object"].pop("charges", None)
            charge = self.data["object"].get("latest_charge")
            if isinstance(charge, dict):
                self.data["object"]["latest_charge"] = charge["id"]

    resources.Event.__init__ = event_init


def _client_authorised(data: dict[str, Any], request: web.Request, intent: Any) -> bool:
    if server.get_api_key(request) is not None:
        return True
    key = data.get("key")
    return (
        isinstance(key, str)
        and key.startswith("pk_")
        and data.get("client_secret") == intent.client_secret
    )


async def retrieve_payment_intent(request: web.Request, intent_id: str) -> web.Response:
    """GET with publishable key + client secret, as Stripe.js's retrievePaymentIntent does."""
    data = server.unflatten_data(request.query)
    intent = resources.PaymentIntent._api_retrieve(intent_id)
    if not _client_authorised(data, request, intent):
        raise UserError(401, "Unauthorized")
    return server.json_response(intent._export())


async def confirm_payment_intent(request: web.Request, intent_id: str) -> web.Response:
    """Confirm with a payment method, as Stripe.js's confirmPayment does."""
    data = await server.get_post_data(request, remove_auth=False) or {}
    intent = resources.PaymentIntent._api_retrieve(intent_id)
    if not _client_authorised(data, request, intent):
        raise UserError(401, "Unauthorized")
    method_data = data.get("payment_method_data")
    method_id = data.get("payment_method")
    if intent.status in ("requires_payment_method", "requires_confirmation") and (
        method_data or method_id
    ):
        if method_data:
            method_data = dict(method_data)
            method_data.setdefault("type", "card")
            allowed = getattr(intent, "payment_method_types", ["card"])
            if method_data["type"] not in allowed:
                raise UserError(400, f"{method_data['type']} is not allowed for this payment")
            try:
                method = resources.PaymentMethod(**method_data)
            except UserError as exc:
                if method_data["type"] == "card":
                    raise UserError(
                        402,
                        "Your card number is incorrect.",
                        {
                            "type": "card_error",
                            "code": "incorrect_number",
                        },
                    ) from exc
                raise
            method_id = method.id
        resources.PaymentMethod._api_retrieve(method_id)
        intent.payment_method = method_id
        intent.latest_charge = None
        intent._authentication_failed = False
    if intent.status != "requires_confirmation":
        raise UserError(
            400,
            f"This PaymentIntent's status is {intent.status}.",
            {
                "code": "payment_intent_unexpected_state",
            },
        )
    try:
        intent._confirm(on_failure_now=intent._report_failure)
    except UserError as exc:
        exc.body["error"]["type"] = "card_error"
        exc.body["error"]["payment_intent"] = intent._export()
        return exc.to_response()
    finally:
        resources.store.dump_to_disk()
    return server.json_response(intent._export())


async def stripe_js(request: web.Request) -> web.Response:
    return web.Response(
        text=(STATIC / "stripe-v3.js").read_text(), content_type="application/javascript"
    )


@web.middleware
async def overrides(request: web.Request, handler: Any) -> web.StreamResponse:
    """Our routes win over localstripe's, which the router would match first."""
    parts = request.path.strip("/").split("/")
    try:
        if parts[:2] == ["v1", "payment_intents"] and len(parts) >= 3:
            if request.method == "POST" and parts[3:] == ["confirm"]:
                return await confirm_payment_intent(request, parts[2])
            if (
                request.method == "GET"
                and len(parts) == 3
                and "client_secret" in request.query
                and server.get_api_key(request) is None
            ):
                return await retrieve_payment_intent(request, parts[2])
        if request.method == "GET" and request.path == "/js.stripe.com/v3/":
            return await stripe_js(request)
    except UserError as exc:
        return exc.to_response()
    return await handler(request)


def build_app(
    state_path: Path, webhooks: list[tuple[str, str]], from_scratch: bool = False
) -> web.Application:
    """The localstripe app with every adaptation applied."""
    from localstripe.webhooks import register_webhook

    _patch_state_file(state_path)
    _patch_payment_intent_types()
    _patch_declines()
    _patch_shapes()
    if not from_scratch:
        resources.store.try_load_from_disk()
    for number, (url, secret) in enumerate(webhooks):
        register_webhook(f"wh_{number}", url, secret, None)
    app = server.app
    if overrides not in app.middlewares:
        app.middlewares.insert(0, overrides)
    return app


def describe() -> str:
    return json.dumps(DIFFERENCES, indent=2)
