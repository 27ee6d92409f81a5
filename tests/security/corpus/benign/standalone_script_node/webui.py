"""A small web front end for a running server, started by run_webui.bat (`streamlit run webui.py`)."""

import json
import urllib.request
import uuid

SERVER = "127.0.0.1:8188"
CLIENT = str(uuid.uuid4())


def queue(prompt):
    data = json.dumps({"prompt": prompt, "client_id": CLIENT}).encode()
    request = urllib.request.Request(f"http://{SERVER}/prompt", data=data)
    return json.loads(urllib.request.urlopen(request).read())


def history(prompt_id):
    with urllib.request.urlopen(f"http://{SERVER}/history/{prompt_id}") as response:
        return json.loads(response.read())


workflow = {"1": {"class_type": "Echo", "inputs": {"text": "hello"}}}
result = queue(workflow)
print(history(result["prompt_id"]))
