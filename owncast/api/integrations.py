"""Integration endpoints under ``/api/integrations``: bearer tokens with per-route scopes.

Both paths of each renamed endpoint are served: the API page's ``/chat/send`` and
``/chat/messagevisibility`` and the OpenAPI document's ``/chat/user`` and
``/chat/updatemessagevisibility``. Answers as Owncast 0.0.7's (router/router.go routes
these to controllers/admin/chat.go and controllers/chat.go).
"""

from __future__ import annotations

from typing import Any

from owncast.api import shapes
from owncast.api.admin import change_title, visibility_request
from owncast.api.http import JsonApp, body_object, config_value, json_api, json_app, ok, token
from owncast.core.settings import SETTERS
from owncast.core.tokens import CAN_SEND_MESSAGES, CAN_SEND_SYSTEM_MESSAGES, HAS_ADMIN_ACCESS


class IntegrationsApi(JsonApp):
    app = json_app()

    @app.route("/streamtitle", methods=["POST"])
    @json_api
    @token(HAS_ADMIN_ACCESS)
    async def stream_title(self, request):
        key, validate = SETTERS["streamtitle"]
        await change_title(self.ctx, validate(config_value(request)))
        return ok("changed")

    @app.route("/chat/user", methods=["POST"])
    @app.route("/chat/send", methods=["POST"])
    @json_api
    @token(CAN_SEND_MESSAGES)
    async def send_user(self, request):
        body = body_object(request, "body")
        # The seed names the sender ``user``; Owncast 0.0.7 read ``author``.
        author: Any = body.get("user", body.get("author"))  # the hub checks it
        await self.ctx.chat.send_user(author, body["body"])
        return ok("sent")

    @app.route("/chat/system", methods=["POST"])
    @json_api
    @token(CAN_SEND_SYSTEM_MESSAGES)
    async def send_system(self, request):
        await self.ctx.chat.send_system(body_object(request, "body")["body"])
        return ok("sent")

    @app.route("/chat/action", methods=["POST"])
    @json_api
    @token(CAN_SEND_SYSTEM_MESSAGES)
    async def send_action(self, request):
        body = body_object(request, "body")
        await self.ctx.chat.send_action(body["body"], body.get("author"))
        return ok("sent")

    @app.route("/clients", methods=["GET"])
    @json_api
    @token(HAS_ADMIN_ACCESS)
    def clients(self, request):
        return [shapes.client(c) for c in self.ctx.chat.clients.values()]

    @app.route("/chat", methods=["GET"])
    @json_api
    @token(HAS_ADMIN_ACCESS)
    async def chat(self, request):
        """0.0.7 served the public history here (controllers/chat.go)."""
        return [shapes.message(m) for m in await self.ctx.chat.history()]

    @app.route("/chat/updatemessagevisibility", methods=["POST"])
    @app.route("/chat/messagevisibility", methods=["POST"])
    @json_api
    @token(HAS_ADMIN_ACCESS)
    async def visibility(self, request):
        ids, visible = visibility_request(request)
        await self.ctx.chat.set_visibility(ids, visible)
        return ok("changed")
