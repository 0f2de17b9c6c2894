"""The charlm HTTP service: a thin FastAPI layer over the `charlm` library.

`service.app.create_app(settings)` builds the application; `charlm serve` runs it under
uvicorn.
"""
