"""The Ray driver process (`[engine] ray_driver = "process"`): runs a `RayBackend` for the server, over pipes.

Ray ends a driver whose head has been gone for a while, taking its whole process with it; so when the cluster is
one the server joins (and can lose), the driver lives here, in a child the server starts and restarts, and the
server itself only loses a child. Started as `python -m partyflow.distributed.agent`; the first frame on stdin is
("init", home, settings). Then, from the server: ("run", rid, item), ("cancel", rid), ("interrupt", prompt_id),
("status", rid), ("close",). To the server: ("started",) or ("unavailable", message) first, then ("event", rid,
event), ("result", rid, wire result), ("error", rid, message, type), ("status", rid, data), ("workers", snapshot,
models) whenever a worker's prompts change, and ("down", message) just before exiting because the cluster went
away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from partyflow.distributed.backend import BackendUnavailable
from partyflow.distributed.results import to_wire
from partyflow.distributed.wire import frame, read_frame

logger = logging.getLogger("partyflow.distributed")

EXIT_DOWN = 3  # the cluster went away (the server restarts the driver when it is back)


class Agent:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.down = asyncio.Event()
        self.down_reason = ""
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def send(self, message: Any) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(message))

    async def serve(self) -> int:
        from partyflow.distributed.ray_backend import RayBackend

        init = await read_frame(self.reader)
        if not init or init[0] != "init":
            return 2
        _, home, settings = init
        self.backend = RayBackend(home, settings, on_down=self._on_down)
        self.backend.on_change = self._send_workers
        try:
            await self.backend.start()
        except BackendUnavailable as exc:
            self.send(("unavailable", str(exc)))
            return EXIT_DOWN
        self.send(("started",))
        self._send_workers()
        code = await self._loop()
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if code == 0:
            await self.backend.close()
        return code

    async def _loop(self) -> int:
        down = asyncio.ensure_future(self.down.wait())
        try:
            while True:
                receive = asyncio.ensure_future(read_frame(self.reader))
                await asyncio.wait([receive, down], return_when=asyncio.FIRST_COMPLETED)
                if down.done():
                    receive.cancel()
                    self.send(("down", self.down_reason))
                    return EXIT_DOWN
                message = receive.result()
                if message is None or message[0] == "close":  # the server closed us, or went away
                    return 0
                self._handle(message)
        finally:
            down.cancel()

    def _handle(self, message: tuple[Any, ...]) -> None:
        op = message[0]
        if op == "run":
            _, rid, item = message
            self.tasks[rid] = asyncio.create_task(self._run(rid, item))
        elif op == "cancel":
            task = self.tasks.get(message[1])
            if task is not None:
                task.cancel()
        elif op == "interrupt":
            self.backend.interrupt(message[1])
        elif op == "status":
            asyncio.create_task(self._status(message[1]))

    async def _run(self, rid: int, item: tuple[Any, ...]) -> None:
        from partyflow.engine.queue import QueueItem

        try:
            result = await self.backend.run(QueueItem(*item), lambda event: self.send(("event", rid, event)))
            self.send(("result", rid, to_wire(result)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("prompt %s failed in the Ray driver", item[1])
            self.send(("error", rid, str(exc), type(exc).__name__))
        finally:
            self.tasks.pop(rid, None)
            self._send_workers()

    async def _status(self, rid: int) -> None:
        try:
            data = await self.backend.status()
        except Exception as exc:
            data = {"backend": "ray", "healthy": False, "last_error": f"{type(exc).__name__}: {exc}"}
        self.send(("status", rid, data))

    def _send_workers(self) -> None:
        snapshot = [(w.id, sorted(w.running), w.failures, w.done, w.failed, w.cache_hits)
                    for w in self.backend.workers_snapshot()]
        self.send(("workers", snapshot, self.backend.loaded_model_actors(), self.backend.retried))

    def _on_down(self, reason: str) -> None:
        self.down_reason = reason
        self.down.set()


async def _main() -> int:
    loop = asyncio.get_running_loop()
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed (Ray, packs) goes to the log, never into the frames
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    agent = Agent(reader, writer)
    code = await agent.serve()
    try:
        await asyncio.wait_for(writer.drain(), timeout=5)  # the last words ("down") reach the server
    except (TimeoutError, ConnectionError):
        pass
    return code


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s ray-driver[%(process)d] %(name)s: %(message)s")
    code = asyncio.run(_main())
    sys.stdout.flush()
    os._exit(code)  # Ray's threads must not keep a driver whose cluster is gone alive


if __name__ == "__main__":
    main()
