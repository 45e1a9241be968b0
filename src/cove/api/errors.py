"""The one JSON error envelope: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cove.domain import errors as e

STATUS: dict[type[e.CoveError], int] = {
    e.NotFound: 404,
    e.Conflict: 409,
    e.Invalid: 422,
    e.QuotaExceeded: 403,
    e.Forbidden: 403,
    e.Unauthorized: 401,
    e.Unsupported: 400,
    e.DeployFailed: 422,
    e.ImageError: 422,
    e.BuildFailed: 422,
    e.RateLimited: 429,
}


def envelope(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="cove"'} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.CoveError)
    async def _cove(_: Request, err: e.CoveError) -> JSONResponse:
        status = next((s for cls, s in STATUS.items() if isinstance(err, cls)), 400)
        return envelope(status, err.code, err.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return envelope(422, "invalid", f"{where}: {first.get('msg')}" if where
                        else str(first.get("msg")))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "error")
        return envelope(err.status_code, code, str(err.detail))
