"""The REST API: thin handlers that parse, call one service and map the result."""

import base64
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO, TypeVar, cast

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cove import __version__
from cove.api import errors
from cove.api.schemas import (
    AppIn,
    AppPatch,
    AutoscaleIn,
    ConfigPatch,
    DeployIn,
    DoctorOut,
    DomainIn,
    LoginIn,
    MemberIn,
    ProcessPatch,
    RollbackIn,
    SignupIn,
    SpaceIn,
    audit_dict,
    release_dict,
)
from cove.domain.errors import Invalid, Unauthorized
from cove.domain.models import Autoscale, User
from cove.domain.roles import Role
from cove.ports.registry import Credentials
from cove.services import accounts, apps, builds, doctor, releases, sources, spaces, stacks
from cove.services.context import Context
from cove.services.logs import app_logs
from cove.services.reconciler import Reconciler

MAX_LOG_TAIL = 10_000
T = TypeVar("T")
MAX_UPLOAD = 256 * 2**20


async def spooled(request: Request, limit: int = MAX_UPLOAD) -> Any:
    """The request body in a temporary file on disk (git reads it through a descriptor);
    chunked transfer encoding is already undone here. Over `limit` is refused."""
    body = tempfile.SpooledTemporaryFile(max_size=8 * 2**20)  # noqa: SIM115 - the caller closes
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            body.close()
            raise Invalid(f"the upload is larger than {limit // 2**20} MiB: leave build output "
                          "and dependencies out (.coveignore, .gitignore)")
        body.write(chunk)
    body.rollover()
    body.flush()
    body.seek(0)
    return body


def text_stream(lines: Iterator[str]) -> StreamingResponse:
    """Lines of output (a build's, a stack build's) as they come."""
    return StreamingResponse((line.encode() + b"\n" for line in lines),
                             media_type="text/plain; charset=utf-8")


def closing(resource: Any, chunks: Iterator[T]) -> Iterator[T]:
    """Stream `chunks`, then close `resource` (also when the client goes away)."""
    try:
        yield from chunks
    finally:
        resource.close()


def create_api(ctx: Context, reconciler: Reconciler) -> FastAPI:
    api = FastAPI(title="Cove", version=__version__,
                  description="Cove's REST API: spaces, apps, releases, config, scale, logs.")
    errors.install(api)

    def token_of(authorization: str | None) -> str:
        if not authorization:
            raise Unauthorized("not logged in: run `cove login`")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
        if scheme.lower() == "basic" and value:
            # git and other basic-auth clients send the API token as the password
            try:
                return base64.b64decode(value).decode().partition(":")[2]
            except ValueError:
                pass
        raise Unauthorized("send the API token as `Authorization: Bearer <token>`")

    def current_user(authorization: Annotated[str | None, Header()] = None) -> User:
        return accounts.authenticate(ctx, token_of(authorization))

    Me = Annotated[User, Depends(current_user)]

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # -- accounts -------------------------------------------------------------------------

    @api.post("/v1/users", status_code=201)
    def signup(body: SignupIn, authorization: Annotated[str | None, Header()] = None
               ) -> dict[str, Any]:
        by = accounts.authenticate(ctx, token_of(authorization)) if authorization else None
        user, space = accounts.signup(ctx, body.name, body.password, by=by)
        return {"user": user.name, "space": space.name}

    @api.post("/v1/tokens", status_code=201)
    def login(body: LoginIn) -> dict[str, str]:
        return {"token": accounts.login(ctx, body.name, body.password, body.description)}

    @api.delete("/v1/tokens/current", status_code=204)
    def logout(authorization: Annotated[str | None, Header()] = None) -> Response:
        accounts.logout(ctx, token_of(authorization))
        return Response(status_code=204)

    @api.get("/v1/me")
    def me(user: Me) -> dict[str, Any]:
        return {"name": user.name, "is_admin": user.is_admin,
                "spaces": [{"name": s.name, "role": r.label}
                           for s, r in spaces.list_spaces(ctx, user)]}

    # -- spaces ---------------------------------------------------------------------------

    @api.get("/v1/spaces")
    def list_spaces(user: Me) -> list[dict[str, Any]]:
        return [spaces.show_space(ctx, user, s.name).as_dict()
                for s, _ in spaces.list_spaces(ctx, user)]

    @api.post("/v1/spaces", status_code=201)
    def create_space(body: SpaceIn, user: Me) -> dict[str, Any]:
        space = spaces.create_space(ctx, user, body.name, body.pool)
        return spaces.show_space(ctx, user, space.name).as_dict()

    @api.get("/v1/spaces/{space}")
    def show_space(space: str, user: Me) -> dict[str, Any]:
        return spaces.show_space(ctx, user, space).as_dict()

    @api.delete("/v1/spaces/{space}", status_code=204)
    def destroy_space(space: str, user: Me) -> Response:
        spaces.destroy_space(ctx, user, space)
        reconciler.sync_routes()
        return Response(status_code=204)

    @api.put("/v1/spaces/{space}/quota")
    def set_quota(space: str, body: dict[str, int], user: Me) -> dict[str, int]:
        return spaces.set_quota(ctx, user, space, body).as_dict()

    @api.get("/v1/spaces/{space}/members")
    def members(space: str, user: Me) -> list[dict[str, str]]:
        view = spaces.show_space(ctx, user, space)
        return [{"user": n, "role": r.label} for n, r in view.members]

    @api.put("/v1/spaces/{space}/members/{member}")
    def set_member(space: str, member: str, body: MemberIn, user: Me) -> dict[str, str]:
        role = Role.parse(body.role)
        spaces.set_member(ctx, user, space, member, role)
        return {"user": member, "role": role.label}

    @api.delete("/v1/spaces/{space}/members/{member}", status_code=204)
    def remove_member(space: str, member: str, user: Me) -> Response:
        spaces.remove_member(ctx, user, space, member)
        return Response(status_code=204)

    @api.get("/v1/spaces/{space}/audit")
    def audit(space: str, user: Me, limit: int = 100) -> list[dict[str, Any]]:
        return [audit_dict(a) for a in spaces.audit_log(ctx, user, space, min(limit, 1000))]

    # -- apps -----------------------------------------------------------------------------

    @api.get("/v1/spaces/{space}/apps")
    def list_apps(space: str, user: Me) -> list[dict[str, Any]]:
        return [apps.show_app(ctx, user, space, a.name).as_dict()
                for a in apps.list_apps(ctx, user, space)]

    @api.post("/v1/spaces/{space}/apps", status_code=201)
    def create_app(space: str, body: AppIn, user: Me) -> dict[str, Any]:
        app = apps.create_app(ctx, user, space, body.name, body.health_path, body.health_timeout)
        return apps.show_app(ctx, user, space, app.name).as_dict()

    @api.get("/v1/spaces/{space}/apps/{app}")
    def show_app(space: str, app: str, user: Me) -> dict[str, Any]:
        return apps.show_app(ctx, user, space, app).as_dict()

    @api.patch("/v1/spaces/{space}/apps/{app}")
    def update_app(space: str, app: str, body: AppPatch, user: Me) -> dict[str, Any]:
        apps.update_app(ctx, user, space, app, body.health_path, body.health_timeout)
        return apps.show_app(ctx, user, space, app).as_dict()

    @api.delete("/v1/spaces/{space}/apps/{app}", status_code=204)
    def destroy_app(space: str, app: str, user: Me) -> Response:
        apps.destroy_app(ctx, user, space, app)
        return Response(status_code=204)

    # -- releases, config, scale ------------------------------------------------------------

    def release_out(space: str, app: str, user: User, version: int) -> dict[str, Any]:
        view = apps.show_app(ctx, user, space, app)
        out = release_dict(next(r for r in releases.list_releases(ctx, user, space, app)
                                if r.version == version), version)
        out["url"] = view.url
        return out

    @api.post("/v1/spaces/{space}/apps/{app}/deploys", status_code=201)
    def deploy(space: str, app: str, body: DeployIn, user: Me) -> dict[str, Any]:
        creds = Credentials(body.username, body.password or "") if body.username else None
        release = releases.deploy_image(ctx, user, space, app, body.image, creds)
        return release_out(space, app, user, release.version)

    @api.get("/v1/spaces/{space}/apps/{app}/releases")
    def list_releases(space: str, app: str, user: Me) -> list[dict[str, Any]]:
        current = apps.show_app(ctx, user, space, app).app.release_version
        return [release_dict(r, current) for r in releases.list_releases(ctx, user, space, app)]

    @api.post("/v1/spaces/{space}/apps/{app}/rollback", status_code=201)
    def rollback(space: str, app: str, body: RollbackIn, user: Me) -> dict[str, Any]:
        release = releases.rollback(ctx, user, space, app, body.version)
        return release_out(space, app, user, release.version)

    @api.get("/v1/spaces/{space}/apps/{app}/config")
    def get_config(space: str, app: str, user: Me) -> dict[str, str]:
        return releases.get_config(ctx, user, space, app)

    @api.patch("/v1/spaces/{space}/apps/{app}/config")
    def set_config(space: str, app: str, body: ConfigPatch, user: Me) -> dict[str, Any]:
        release = releases.set_config(ctx, user, space, app, body.vars)
        return {"config": releases.get_config(ctx, user, space, app),
                "release": f"v{release.version}" if release else None}

    @api.get("/v1/spaces/{space}/apps/{app}/formation")
    def formation(space: str, app: str, user: Me) -> dict[str, Any]:
        return apps.show_app(ctx, user, space, app).as_dict()["formation"]  # type: ignore[no-any-return]

    @api.patch("/v1/spaces/{space}/apps/{app}/formation")
    def scale(space: str, app: str, body: dict[str, ProcessPatch], user: Me) -> dict[str, Any]:
        changes = {k: (v.count, v.size) for k, v in body.items()}
        result = releases.scale(ctx, reconciler, user, space, app, changes)
        return releases.formation_dict(result)

    @api.put("/v1/spaces/{space}/apps/{app}/formation/{process}/autoscale")
    def autoscale(space: str, app: str, process: str, body: AutoscaleIn,
                  user: Me) -> dict[str, Any]:
        setting = Autoscale(body.min, body.max, body.cpu_percent)
        result = releases.autoscale(ctx, reconciler, user, space, app, process, setting)
        return releases.formation_dict(result)

    @api.delete("/v1/spaces/{space}/apps/{app}/formation/{process}/autoscale")
    def stop_autoscale(space: str, app: str, process: str, user: Me) -> dict[str, Any]:
        result = releases.autoscale(ctx, reconciler, user, space, app, process, None)
        return releases.formation_dict(result)

    @api.get("/v1/spaces/{space}/apps/{app}/instances")
    def instances(space: str, app: str, user: Me) -> list[dict[str, Any]]:
        return apps.show_app(ctx, user, space, app).as_dict()["instances"]  # type: ignore[no-any-return]

    @api.get("/v1/spaces/{space}/apps/{app}/logs")
    def logs(space: str, app: str, user: Me, tail: int = 100,
             follow: bool = False, seconds: float | None = None) -> StreamingResponse:
        tail = max(0, min(tail, MAX_LOG_TAIL))
        stop = time.monotonic() + seconds if seconds else None
        lines = app_logs(ctx, user, space, app, tail, follow, stop)

        def body() -> Iterator[bytes]:
            for line in lines:
                stamp = line.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                yield f"{stamp} {line.source}: {line.text}\n".encode()

        return StreamingResponse(body(), media_type="text/plain; charset=utf-8")

    @api.post("/v1/spaces/{space}/apps/{app}/builds")
    async def push(space: str, app: str, request: Request, user: Me) -> StreamingResponse:
        """Upload a (gzipped) tarball of source; the response streams the build's output."""
        upload = await spooled(request)
        lines = await run_in_threadpool(builds.push_source, ctx, user, space, app,
                                        cast(BinaryIO, upload))
        return text_stream(closing(upload, lines))

    @api.get("/v1/stacks")
    def list_stacks(user: Me) -> list[dict[str, Any]]:
        """The build and run images buildpacks use."""
        return [dataclasses.asdict(s) for s in stacks.list_stacks(ctx, user)]

    @api.post("/v1/stacks/build")
    def build_stacks(user: Me) -> StreamingResponse:
        """(Re)make the stack images (platform admins); the response streams the output."""
        lines = stacks.build_stacks(ctx, user)
        return text_stream(lines)

    @api.get("/v1/spaces/{space}/apps/{app}/builds")
    def list_builds(space: str, app: str, user: Me) -> list[dict[str, Any]]:
        return [{"number": b.number, "status": b.status, "builder": b.builder,
                 "release": f"v{b.release_version}" if b.release_version else None,
                 "error": b.error, "created_by": b.created_by,
                 "created_at": b.created_at.isoformat(),
                 "finished_at": b.finished_at.isoformat() if b.finished_at else None}
                for b in builds.list_builds(ctx, user, space, app)]

    @api.get("/v1/spaces/{space}/apps/{app}/builds/{number}/log")
    def build_log(space: str, app: str, number: int, user: Me) -> Response:
        return Response(builds.build_log(ctx, user, space, app, number),
                        media_type="text/plain; charset=utf-8")

    @api.api_route("/git/{space}/{app}.git/{path:path}", methods=["GET", "POST"],
                   include_in_schema=False)
    async def git(space: str, app: str, path: str, request: Request) -> Response:
        """Smart HTTP for `git clone` and `git push`: the API token is the password."""
        authorization = request.headers.get("authorization")
        if not authorization:
            return Response("log in with your user name and API token (`cove auth token`)\n",
                            401, headers={"WWW-Authenticate": 'Basic realm="cove"'})
        token = token_of(authorization)
        user = await run_in_threadpool(accounts.authenticate, ctx, token)
        body = await spooled(request)
        answer = await run_in_threadpool(
            sources.serve_git, ctx, user, token, space, app, request.method, path,
            request.url.query, request.headers.get("content-type", ""), cast(BinaryIO, body))
        return StreamingResponse(closing(body, answer.body), answer.status,
                                 headers=answer.headers)

    @api.get("/v1/spaces/{space}/doctor")
    def space_doctor(space: str, user: Me) -> DoctorOut:
        """The production-readiness checklist of the platform this space runs on."""
        return DoctorOut.of(space, None, doctor.space_report(ctx, user, space))

    @api.get("/v1/spaces/{space}/apps/{app}/doctor")
    def app_doctor(space: str, app: str, user: Me) -> DoctorOut:
        """The platform's checklist and the app's, read from what really runs."""
        return DoctorOut.of(space, app, doctor.app_report(ctx, user, space, app))

    @api.get("/v1/spaces/{space}/apps/{app}/domains")
    def list_domains(space: str, app: str, user: Me) -> list[str]:
        return [d.hostname for d in apps.list_domains(ctx, user, space, app)]

    @api.post("/v1/spaces/{space}/apps/{app}/domains", status_code=201)
    def add_domain(space: str, app: str, body: DomainIn, user: Me) -> dict[str, str]:
        return {"hostname": apps.add_domain(ctx, user, space, app, body.hostname).hostname}

    @api.delete("/v1/spaces/{space}/apps/{app}/domains/{hostname}", status_code=204)
    def remove_domain(space: str, app: str, hostname: str, user: Me) -> Response:
        apps.remove_domain(ctx, user, space, app, hostname)
        return Response(status_code=204)

    return api
