"""Benign excerpt (written for the tests): routes registered at import by a function; the handlers fetch a model
list when the browser asks, not when the pack loads, and read the parsed JSON with dict.get()."""

import aiohttp
from aiohttp import web

ROUTES = web.RouteTableDef()
NODE_CLASS_MAPPINGS = {}


async def fetch_models(base_url, api_key):
    headers = {"Authorization": f"Bearer {api_key}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/models", headers=headers) as response:
            data = await response.json()
            models = [item.get("id") for item in data.get("data", []) if item.get("id")]
            return models, data.get("error")


def register_routes(routes):
    @routes.post("/example/refresh_models")
    async def refresh_models(request):
        body = await request.json()
        models, error = await fetch_models(body.get("base_url", ""), body.get("api_key", ""))
        return web.json_response({"models": models, "error": error})

    @routes.get("/example/ping")
    async def ping(request):
        return web.json_response({"ok": True})


register_routes(ROUTES)
