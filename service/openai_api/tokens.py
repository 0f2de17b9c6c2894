"""Tokens are characters: `/tokenize`, `/detokenize` and `/tokenizer_info`, in the shape
vLLM's server gives them, so that clients which count tokens through the server (such
as lm-evaluation-harness's `tokenizer_backend=remote`) can. A token id is the character's
index in the model's vocabulary; the model has no special tokens. A text, given or
made, is held to `--max-text-chars` as on every other route (413 above it).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from charlm import InputError
from charlm.registry import LoadedModel

from ..limits import check_limits
from ..routes import ERRORS, model_for
from . import schemas

__all__ = ["decode", "router"]

router = APIRouter(tags=["OpenAI-compatible"])


def decode(model: LoadedModel, ids: list[int], what: str = "tokens") -> str:
    """The text of token ids; ids outside the vocabulary are refused."""
    vocab = model.predictor.vocab
    for i in ids:
        if not 0 <= i < len(vocab):
            raise InputError(f"{what}: {i} is not a token of this model (0 to {len(vocab) - 1})")
    return vocab.decode(ids)


async def _loaded(request: Request, name: str | None) -> LoadedModel:
    return await model_for(request.app.state.registry, request.app.state.compute, name)


@router.post("/tokenize", response_model=schemas.TokenizeResponse, responses=ERRORS)
async def tokenize(req: schemas.TokenizeRequest, request: Request) -> schemas.TokenizeResponse:
    check_limits(request.app.state.settings, text=req.prompt, what="prompt")
    model = await _loaded(request, req.model)
    ids = model.predictor.vocab.encode(req.prompt, what="prompt").tolist() if req.prompt else []
    return schemas.TokenizeResponse(tokens=ids, count=len(ids))


@router.post("/detokenize", response_model=schemas.DetokenizeResponse, responses=ERRORS)
async def detokenize(
    req: schemas.DetokenizeRequest, request: Request
) -> schemas.DetokenizeResponse:
    text = decode(await _loaded(request, req.model), req.tokens)  # as long as the body allows
    check_limits(request.app.state.settings, text=text, what="the text of the tokens")
    return schemas.DetokenizeResponse(prompt=text)


@router.get("/tokenizer_info", response_model=schemas.TokenizerInfo, responses=ERRORS)
async def tokenizer_info(request: Request, model: str | None = None) -> schemas.TokenizerInfo:
    loaded = await _loaded(request, model)
    return schemas.TokenizerInfo(model=loaded.name, vocab_size=len(loaded.predictor.vocab))
