"""The one table of who may call which route: (method, path as registered, without the `/api` prefix) ->
what the caller needs. A route missing here is refused to everyone but admins (fail closed), and the test suite
checks that every route of the app has a row, so a new route cannot slip through without a decision.

Levels: PUBLIC (no identity: the login page and the editor's static files, which hold no data), CHAT (the run
permission, or a token scoped to one published model — the handler checks the model), and the permissions of
`partyflow.access` (read < run < publish < admin).
"""

from __future__ import annotations

from typing import Final

from partyflow.access import Permission

PUBLIC: Final = "public"
CHAT: Final = "chat"
Level = Permission | str

READ, RUN, PUBLISH, ADMIN = Permission.READ, Permission.RUN, Permission.PUBLISH, Permission.ADMIN

RULES: dict[tuple[str, str], Level] = {
    # the editor itself and logging in
    ("GET", "/"): PUBLIC, ("GET", "/login"): PUBLIC, ("POST", "/login"): PUBLIC, ("POST", "/logout"): PUBLIC,
    ("GET", "/login/oidc"): PUBLIC, ("GET", "/login/oidc/callback"): PUBLIC,  # single sign-on (server/oidc.py)
    ("GET", "/templates/index.json"): PUBLIC, ("GET", "/templates/index_logo.json"): PUBLIC,
    ("GET", "/extensions/{pack}/{path}"): PUBLIC,  # packs' frontend scripts: code, no data
    ("POST", "/channels/{name}/events"): PUBLIC,  # chat platforms: each request is verified by its signature
    # prompts, queue and history
    ("GET", "/prompt"): READ, ("POST", "/prompt"): RUN,
    ("GET", "/queue"): READ, ("POST", "/queue"): RUN,  # a runner deletes only its own queued prompts
    ("GET", "/history"): READ, ("GET", "/history/{prompt_id}"): READ, ("POST", "/history"): ADMIN,
    ("GET", "/channels/history"): ADMIN,  # what people wrote to the channels and the answers (issue 16)
    ("POST", "/interrupt"): RUN,  # a runner interrupts only its own prompt
    ("POST", "/free"): ADMIN,
    ("GET", "/jobs"): READ, ("GET", "/jobs/{job_id}"): READ, ("POST", "/jobs/{job_id}/cancel"): RUN,
    ("POST", "/jobs/cancel"): RUN,
    ("GET", "/ws"): READ,
    # what is installed
    ("GET", "/object_info"): READ, ("GET", "/object_info/{class_type}"): READ,
    ("GET", "/models"): READ, ("GET", "/models/{folder}"): READ, ("GET", "/embeddings"): READ,
    ("GET", "/extensions"): READ, ("GET", "/system_stats"): READ, ("GET", "/features"): READ,
    ("GET", "/i18n"): READ, ("GET", "/global_subgraphs"): READ, ("GET", "/experiment/models"): READ,
    ("GET", "/workflow_templates"): READ, ("GET", "/workflow_templates/{module}/{file}"): READ,
    ("GET", "/metrics"): READ,
    ("GET", "/internal/folder_paths"): READ, ("GET", "/internal/files/{directory_type}"): READ,
    ("GET", "/internal/logs"): ADMIN, ("GET", "/internal/logs/raw"): ADMIN,  # server logs: admins only
    ("PATCH", "/internal/logs/subscribe"): ADMIN,
    ("GET", "/partyflow/backend"): READ,  # issue 15: where prompts run
    # files
    ("GET", "/view"): READ, ("POST", "/upload/image"): RUN, ("POST", "/upload/mask"): RUN,
    # the caller's own data (each user's directory; settings are the caller's editor preferences)
    ("GET", "/users"): READ, ("POST", "/users"): ADMIN,
    ("GET", "/settings"): READ, ("POST", "/settings"): READ,
    ("GET", "/settings/{id}"): READ, ("POST", "/settings/{id}"): READ,
    ("GET", "/userdata"): READ, ("GET", "/v2/userdata"): READ, ("GET", "/userdata/{file}"): READ,
    ("POST", "/userdata/{file}"): PUBLISH, ("DELETE", "/userdata/{file}"): PUBLISH,
    ("POST", "/userdata/{file}/move/{dest}"): PUBLISH,
    ("GET", "/user.css"): READ,
    # published workflows as chat models
    ("GET", "/v1/models"): CHAT, ("GET", "/v1/models/{model}"): CHAT, ("POST", "/v1/chat/completions"): CHAT,
    # the manager (ComfyUI-Manager's v2 API): reading state is harmless, changing it is an admin's
    ("GET", "/v2/customnode/installed"): READ, ("GET", "/v2/customnode/getmappings"): READ,
    ("GET", "/v2/customnode/fetch_updates"): ADMIN,
    ("POST", "/v2/customnode/import_fail_info"): READ, ("POST", "/v2/customnode/import_fail_info_bulk"): READ,
    ("POST", "/v2/manager/queue/task"): ADMIN, ("POST", "/v2/manager/queue/start"): ADMIN,
    ("POST", "/v2/manager/queue/reset"): ADMIN, ("GET", "/v2/manager/queue/status"): READ,
    ("GET", "/v2/manager/queue/history"): READ, ("GET", "/v2/manager/queue/history_list"): READ,
    ("GET", "/v2/manager/version"): READ, ("GET", "/v2/manager/db_mode"): READ,
    ("POST", "/v2/manager/db_mode"): ADMIN, ("GET", "/v2/manager/channel_url_list"): READ,
    ("POST", "/v2/manager/channel_url_list"): ADMIN,
    # the manager dialog's catalog, shaped like the Comfy registry (browsing only)
    ("GET", "/partyflow/registry/nodes"): READ, ("GET", "/partyflow/registry/nodes/search"): READ,
    ("GET", "/partyflow/registry/nodes/{pack_id}"): READ, ("GET", "/partyflow/registry/nodes/{pack_id}/versions"): READ,
    ("POST", "/partyflow/registry/bulk/nodes/versions"): READ, ("*", "/partyflow/registry/{rest}"): READ,
    ("GET", "/partyflow/registry/comfy-nodes/{node_name}/node"): READ,
    ("POST", "/v2/manager/reboot"): ADMIN,
    # model providers (the editor's Providers page): admins, and only from this machine (the route checks)
    ("GET", "/partyflow/providers"): ADMIN, ("POST", "/partyflow/providers/{name}/test"): ADMIN,
    ("PUT", "/partyflow/providers/{name}"): ADMIN,
    ("GET", "/v2/snapshot/getlist"): ADMIN, ("GET", "/v2/snapshot/get_current"): ADMIN,
    ("POST", "/v2/snapshot/save"): ADMIN, ("POST", "/v2/snapshot/restore"): ADMIN,
    ("POST", "/v2/snapshot/remove"): ADMIN,
}
PACK_ROUTES: Final = RUN  # routes node packs register: they can do anything a node can
UNLISTED: Final = ADMIN


def level_for(method: str, path: str | None, *, static: bool = False, pack_route: bool = False) -> Level:
    """What a request needs; `path` is the route's registered template (`/history/{prompt_id}`)."""
    if static:
        return PUBLIC
    method = "GET" if method == "HEAD" else method
    if path is not None and path.startswith("/api/"):
        path = path[len("/api"):]
    if path is not None and (method, path) in RULES:
        return RULES[(method, path)]
    if path is not None and ("*", path) in RULES:  # a route registered for every method
        return RULES[("*", path)]
    return PACK_ROUTES if pack_route else UNLISTED
