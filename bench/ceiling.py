"""The ceiling for bench/serve.py: a FastAPI app whose one endpoint does nothing.

Served by the same uvicorn as `charlm serve`, it measures what HTTP parsing, routing
and a JSON answer cost on this machine before any model runs. The request body is
sent but not read.
"""

from fastapi import FastAPI

app = FastAPI()


@app.post("/empty")
async def empty() -> dict[str, str]:
    return {}
