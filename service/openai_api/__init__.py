"""The OpenAI-compatible door beside charlm's own API: `/v1/completions` (characters as
tokens, with per-character logprobs and `echo`), `/v1/models`, and errors in OpenAI's
shape on every `/v1` route.

schemas.py   the request and answer bodies, in the OpenAI completions API's shape
routes.py    the routes: each checks, then asks the library and the generation engine
shape.py     ASGI middleware: any error answer on a /v1 route in OpenAI's error shape
tokens.py    /tokenize, /detokenize and /tokenizer_info: characters as tokens (vLLM's shape)
"""

from .routes import router
from .shape import OpenAIErrors
from .tokens import router as tokens_router

__all__ = ["OpenAIErrors", "router", "tokens_router"]
