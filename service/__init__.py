"""The charlm HTTP service, installed as the package `charlm_service`: a thin FastAPI
layer over the `charlm` library.

`charlm_service.app.create_app(settings)` builds the application; `charlm serve` runs it
under uvicorn. Its modules import each other relatively, so the package works under the
name it is installed as.
"""
