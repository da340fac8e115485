"""An object, or a prefix of objects, in object storage, behind the same interface as a path.

Credentials come from where the filesystem's own library looks: for S3, botocore's chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, an instance or pod role;
AWS_ENDPOINT_URL for an S3-compatible server); for GCS, Google's default credentials.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.errors import (
    InvalidParameterError,
    MissingPathError,
    StorageAccessError,
    StorageCredentialsError,
)
from storage.files import private_staging_folder
from storage.location import SUPPORTED_PROTOCOLS, Location, is_glob

__all__ = ["ObjectLocation", "ObjectStorageSettings", "object_location"]

SETTINGS_PREFIX = "REVIEW_SCORING_"


class ObjectStorageSettings(BaseSettings):
    """How long object storage may take: the storage layer's part of the one settings object
    (flows.settings.Settings holds these fields too, read from the same variables).

    Botocore's defaults (60 s read timeout, several tries, each inside s3fs's own five) let an
    endpoint that never answers hold a call for about 7 minutes; these bound one call to under a
    minute (measured: 43 s, as s3fs may make more than one request a call), each request at most
    (1 + retries) x the read timeout plus short pauses. The read timeout bounds the wait between
    two bytes, not a whole download.
    """

    model_config = SettingsConfigDict(env_prefix=SETTINGS_PREFIX, extra="ignore")

    s3_connect_timeout_seconds: float = Field(
        default=5, gt=0, description="S3: seconds to open a connection to the endpoint"
    )
    s3_read_timeout_seconds: float = Field(
        default=10, gt=0, description="S3: seconds to wait for the endpoint's answer"
    )
    s3_retries: int = Field(
        default=2, ge=0, le=10, description="S3: tries after the first, for a call that failed"
    )


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def checked_settings(read: Callable[[], SettingsT]) -> SettingsT:
    """The settings `read` makes, or one InvalidParameterError naming each setting and what is
    wrong, without the values (a path may hold a secret that must not reach a log)."""
    try:
        return read()
    except ValidationError as error:
        problems = "; ".join(
            f"{SETTINGS_PREFIX}{str(problem['loc'][0]).upper()}: {problem['msg']}"
            for problem in error.errors()
        )
        raise InvalidParameterError(problems) from None


def object_storage_settings() -> ObjectStorageSettings:
    """The settings from the environment now; InvalidParameterError naming a bad variable."""
    return checked_settings(ObjectStorageSettings)


def s3_endpoint(filesystem: Any = None) -> str | None:
    """The S3 endpoint botocore will call: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or the
    filesystem's own; None for AWS's."""
    client_kwargs = getattr(filesystem, "client_kwargs", None) or {}
    return (
        os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or client_kwargs.get("endpoint_url")
    )


def _s3_options(parameter: str) -> dict[str, Any]:
    """The S3 client's timeouts and tries from the settings. Refuses an endpoint URL holding a
    user name or password (botocore would put it in a traceback), without echoing it."""
    endpoint = s3_endpoint()
    parts = urlsplit(endpoint) if endpoint else None
    if parts is not None and (parts.username or parts.password):
        variable = (
            "AWS_ENDPOINT_URL_S3" if os.environ.get("AWS_ENDPOINT_URL_S3") else ("AWS_ENDPOINT_URL")
        )
        raise StorageCredentialsError(
            f"{parameter}: {variable} holds a user name or password; give the endpoint as "
            "scheme://host:port and the credentials as AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        )
    settings = object_storage_settings()
    return {
        "config_kwargs": {
            "connect_timeout": settings.s3_connect_timeout_seconds,
            "read_timeout": settings.s3_read_timeout_seconds,
            "retries": {"max_attempts": settings.s3_retries + 1, "mode": "standard"},
        },
    }


# Names of the exceptions credential chains raise when they find nothing (matched by name, so
# that neither botocore nor google-auth is imported here).
_NO_CREDENTIALS = {
    "NoCredentialsError": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, in "
    "the environment of the process that runs this (the worker), or give its machine a role",
    "PartialCredentialsError": "AWS credentials are incomplete: set both AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
    "DefaultCredentialsError": "set GOOGLE_APPLICATION_CREDENTIALS, or run `gcloud auth "
    "application-default login`, where this runs",
}


def object_location(uri: str, parameter: str) -> ObjectLocation:
    """The object or prefix a URI names. Raises InvalidParameterError for a protocol that is
    not object storage the project supports, or one whose filesystem is not installed."""
    from fsspec.core import url_to_fs

    protocol = uri.split("://", 1)[0]
    if protocol not in SUPPORTED_PROTOCOLS:
        raise InvalidParameterError(
            f"{parameter}: {protocol}:// is not supported; use a local path, s3:// or gs://"
        )
    options = _s3_options(parameter) if protocol == "s3" else {}
    try:
        # Listings are never cached: another writer's objects must show at once.
        filesystem, path = url_to_fs(uri, use_listings_cache=False, **options)
    except (ImportError, ValueError) as error:
        raise InvalidParameterError(f"{parameter}: cannot use {protocol}:// ({error})") from None
    return ObjectLocation(filesystem, path.rstrip("/"))


def _one_try_in_s3fs(filesystem: Any) -> None:
    """s3fs wraps each botocore call in five tries of its own (a class attribute, not an
    option): one here, so that botocore's tries, from the settings, are the ones that count."""
    if "s3" in getattr(filesystem, "protocol", ()):
        filesystem.retries = 1


class ObjectLocation(Location):
    """An object, or a prefix of objects, in object storage (any fsspec filesystem that can
    refuse a write to an existing object: S3, GCS, Azure)."""

    def __init__(self, filesystem: Any, path: str, info: dict[str, Any] | None = None) -> None:
        _one_try_in_s3fs(filesystem)
        self._fs = filesystem
        self._path = path
        self._info = info  # what a listing said of this object, so facts() needs no request

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled in a Dask worker: the filesystem comes back from its options alone.
        self.__dict__.update(state)
        _one_try_in_s3fs(self._fs)

    @property
    def path(self) -> str:
        """The filesystem's own form of the path: `bucket/key`."""
        return self._path

    @property
    def uri(self) -> str:
        return str(self._fs.unstrip_protocol(self._path))

    @property
    def name(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ObjectLocation:
        return ObjectLocation(self._fs, self._path.rsplit("/", 1)[0])

    def joinpath(self, *parts: str) -> ObjectLocation:
        path = self._path
        for part in parts:
            for piece in part.split("/"):
                if piece in ("", "."):
                    continue
                if piece == "..":
                    raise InvalidParameterError(
                        f"{self.uri}: '..' is not followed in object storage"
                    )
                path = f"{path}/{piece}"
        return ObjectLocation(self._fs, path)

    @property
    def is_local(self) -> bool:
        return False

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The filesystem's errors, with a missing-credentials one said plainly."""
        try:
            yield
        except Exception as error:
            kind = type(error).__name__
            hint = _NO_CREDENTIALS.get(kind)
            if hint is not None:
                raise StorageCredentialsError(
                    f"{self.uri}: no credentials to reach {self.uri.split('://')[0]}:// "
                    f"storage: {hint}"
                ) from None
            unreachable = self._unreachable(kind)
            if unreachable is None:
                raise
            raise StorageAccessError(f"{self.uri}: {unreachable}") from None

    def _unreachable(self, kind: str) -> str | None:
        """What to say of a botocore error that means the endpoint could not be reached
        (matched by name, so botocore is not imported here); None for any other error."""
        endpoint = s3_endpoint(self._fs) or "AWS's S3 endpoint"
        if kind in ("ReadTimeoutError", "ConnectTimeoutError"):
            settings = object_storage_settings()
            timeout, variable = (
                (settings.s3_read_timeout_seconds, "S3_READ_TIMEOUT_SECONDS")
                if kind == "ReadTimeoutError"
                else (settings.s3_connect_timeout_seconds, "S3_CONNECT_TIMEOUT_SECONDS")
            )
            return (
                f"the S3 endpoint {endpoint} did not answer within {timeout:g} s, "
                f"{settings.s3_retries + 1} tries; check that it is up, or raise "
                f"{SETTINGS_PREFIX}{variable} or {SETTINGS_PREFIX}S3_RETRIES"
            )
        if kind == "EndpointConnectionError":
            return (
                f"cannot connect to the S3 endpoint {endpoint}: is it up, and is "
                "AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) right?"
            )
        return None

    def check_can_hold(self, parameter: str) -> None:
        bucket = self._path.split("/", 1)[0]
        with self._errors():
            exists = bool(self._fs.exists(bucket))
        if not exists:
            raise MissingPathError(
                f"{parameter}: bucket {bucket} does not exist ({self.uri}); create it, or "
                f"point {parameter} at a bucket that does"
            )

    def exists(self) -> bool:
        with self._errors():
            return bool(self._fs.exists(self._path))

    def is_dir(self) -> bool:
        with self._errors():
            return bool(self._fs.isdir(self._path))

    def is_file(self) -> bool:
        # Not fsspec's isfile, which answers False for any error: an endpoint that never
        # answers would cost a whole timeout here and again in the next call.
        with self._errors():
            try:
                return bool(self._fs.info(self._path)["type"] == "file")
            except FileNotFoundError:
                return False

    def read_bytes(self) -> bytes:
        with self._errors():
            return bytes(self._fs.cat_file(self._path))

    def open_read(self) -> IO[bytes]:
        with self._errors():
            return self._fs.open(self._path, "rb")  # type: ignore[no-any-return]

    def glob_files(self) -> list[ObjectLocation]:
        """The objects this location's path matches as a glob pattern (`**` recurses), sorted."""
        with self._errors():
            matches = self._fs.glob(self._path, detail=True)
        return [
            ObjectLocation(self._fs, path, info)
            for path, info in sorted(matches.items())
            if info.get("type") == "file"
        ]

    def glob_base(self) -> ObjectLocation:
        """The prefix of this glob pattern before its first wildcard."""
        parts: list[str] = []
        for part in self._path.split("/"):
            if is_glob(part):
                break
            parts.append(part)
        return ObjectLocation(self._fs, "/".join(parts))

    def child_names(self) -> list[tuple[str, bool]]:
        with self._errors():
            entries = self._fs.ls(self._path, detail=True)
        prefix = self._path + "/"
        children = {
            entry["name"].rstrip("/").removeprefix(prefix): entry["type"] == "directory"
            for entry in entries
            if entry["name"].rstrip("/") != self._path
        }
        return sorted(children.items())

    def files_below(self) -> list[str]:
        with self._errors():
            found = self._fs.find(self._path)
        prefix = self._path + "/"
        return sorted(path.removeprefix(prefix) for path in found if path.startswith(prefix))

    def objects_below(self) -> list[ObjectLocation]:
        """Every object below this prefix, sorted, each knowing what the listing said of it."""
        with self._errors():
            found = self._fs.find(self._path, detail=True)
        prefix = self._path + "/"
        return [
            ObjectLocation(self._fs, path, info)
            for path, info in sorted(found.items())
            if path.startswith(prefix) and info.get("type", "file") == "file"
        ]

    def facts(self) -> str:
        info = self._info
        if info is None:
            with self._errors():
                info = self._fs.info(self._path)
        tag = next(
            (info[key] for key in ("ETag", "etag", "generation", "md5Hash") if info.get(key)),
            info.get("LastModified") or info.get("mtime"),
        )
        return f"size={info.get('size')};tag={str(tag).strip(chr(34))}"

    @contextlib.contextmanager
    def local_copy(self) -> Iterator[Path]:
        path = self.new_temporary()
        try:
            self.copy_to(path)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def copy_to(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._errors():
            self._fs.get_file(self._path, str(target))

    def write_atomically(self, content: bytes) -> None:
        with self._errors():
            self._fs.pipe_file(self._path, content)

    def create_exclusively(self, content: bytes) -> bool:
        with self._errors():
            try:
                self._fs.pipe_file(self._path, content, mode="create")
            except FileExistsError:
                return False
        return True

    def publish(self, finished: Path, *, exclusive: bool) -> bool:
        try:
            with self._errors():
                try:
                    self._fs.put_file(
                        str(finished), self._path, mode="create" if exclusive else "overwrite"
                    )
                except FileExistsError:
                    return False
        finally:
            finished.unlink(missing_ok=True)
        return True

    def staging_folder(self) -> Path:
        return private_staging_folder()

    def object_store_options(self) -> dict[str, str]:
        if self.uri.split("://", 1)[0] != "s3":
            return {}  # GCS: object_store finds Google's default credentials as gcsfs does
        import botocore.session

        # botocore's chain, as s3fs resolves it (AWS_PROFILE and ~/.aws included, which
        # object_store alone does not read), and the same endpoint.
        session = botocore.session.get_session()
        options = {"aws_region": session.get_config_variable("region") or "us-east-1"}
        # object_store's `timeout` bounds a whole request (an upload too): its 30 s is kept.
        settings = object_storage_settings()
        options["connect_timeout"] = f"{settings.s3_connect_timeout_seconds:g}s"
        endpoint = s3_endpoint(self._fs)
        if endpoint:
            options["aws_endpoint_url"] = endpoint
            if endpoint.startswith("http://"):
                options["aws_allow_http"] = "true"
        with self._errors():
            credentials = session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            options["aws_access_key_id"] = frozen.access_key
            options["aws_secret_access_key"] = frozen.secret_key
            if frozen.token:
                options["aws_session_token"] = frozen.token
        return options

    def delete(self) -> None:
        with self._errors(), contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._path)
