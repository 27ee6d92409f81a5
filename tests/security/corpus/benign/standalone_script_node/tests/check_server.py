"""Manual check that a server answers: starts one, probes it with inline Python, stops it."""

import subprocess
import sys

PROBE = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8188/').status)"
server = subprocess.Popen([sys.executable, "-m", "http.server", "8188"])
try:
    code = PROBE if len(sys.argv) < 2 else sys.argv[1]
    subprocess.run([sys.executable, "-c", code], check=False)
finally:
    server.terminate()
