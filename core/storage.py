"""Object storage: S3 (boto3) when a bucket is configured, else a local folder. Same interface for both."""

from __future__ import annotations

import base64
import builtins
import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from core.settings import StorageSettings


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


@dataclass(frozen=True)
class PresignedPost:
    """A browser form upload straight to the store: POST `fields` and the file (last) as multipart to `url`."""

    url: str
    fields: dict[str, str]


class ObjectStorage(Protocol):
    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> StoredObject: ...
    def open(self, key: str) -> BinaryIO: ...
    def download(self, key: str, dest: Path) -> None: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> Iterator[StoredObject]: ...
    def presigned_url(self, key: str, filename: str, expires_seconds: int = 300) -> str | None: ...
    def presigned_post(self, key: str, max_bytes: int, expires_seconds: int = 900) -> PresignedPost | None: ...
    def copy(self, source_key: str, dest_key: str) -> None: ...


def _safe_key(key: str) -> str:
    if key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> StoredObject:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        partial.replace(target)  # atomic: a reader never sees half a file
        return StoredObject(key, target.stat().st_size)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def download(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[StoredObject]:
        base = self.root
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    yield StoredObject(key, path.stat().st_size)

    def presigned_url(self, key: str, filename: str, expires_seconds: int = 300) -> str | None:
        return None  # served by the API itself

    def presigned_post(self, key: str, max_bytes: int, expires_seconds: int = 900) -> PresignedPost | None:
        return None  # nothing but the API writes the folder

    def copy(self, source_key: str, dest_key: str) -> None:
        target = self._path(dest_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(self._path(source_key), partial)
        partial.replace(target)


class S3Storage:
    def __init__(self, settings: StorageSettings) -> None:
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {"region_name": settings.region}
        if settings.endpoint_url:
            kwargs["endpoint_url"] = settings.endpoint_url
        if settings.access_key_id:
            kwargs["aws_access_key_id"] = settings.access_key_id
            kwargs["aws_secret_access_key"] = settings.secret_access_key
        # SigV4 everywhere: presigned download links must work on every region and S3-compatible store.
        self.client = boto3.client("s3", config=Config(signature_version="s3v4"), **kwargs)
        # A presigned link is signed for its host and followed by the user's browser, not by us: sign it for the
        # public endpoint when the app reaches the store by another name. Presigning sends no request.
        self.presigner = self.client
        if settings.public_endpoint_url:
            kwargs["endpoint_url"] = settings.public_endpoint_url
            self.presigner = boto3.client("s3", config=Config(signature_version="s3v4"), **kwargs)
        self.bucket = settings.bucket
        self.sse = settings.server_side_encryption

    def _extra(self, content_type: str) -> dict[str, str]:
        extra = {"ContentType": content_type}
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        return extra

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> StoredObject:
        self.client.upload_file(str(path), self.bucket, _safe_key(key), ExtraArgs=self._extra(content_type))
        return StoredObject(key, path.stat().st_size)

    def open(self, key: str) -> BinaryIO:
        """The object's bytes as a stream; FileNotFoundError when there is none, as from the local folder."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=_safe_key(key))["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from error
            raise
        return body  # type: ignore[no-any-return]

    def download(self, key: str, dest: Path) -> None:
        self.client.download_file(self.bucket, _safe_key(key), str(dest))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=_safe_key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=_safe_key(key))
        except ClientError:
            return False
        return True

    def list(self, prefix: str) -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"], int(item["Size"]))

    # --- multipart upload, one part at a time (the caller records progress and can resume) -----------------
    # Parts carry a SHA-256 checksum that S3 verifies on receipt; the object keeps the composite checksum.

    def start_multipart(
        self, key: str, metadata: dict[str, str] | None = None, content_type: str = "application/octet-stream"
    ) -> str:
        response = self.client.create_multipart_upload(
            Bucket=self.bucket,
            Key=_safe_key(key),
            ChecksumAlgorithm="SHA256",
            Metadata=metadata or {},
            **self._extra(content_type),
        )
        return str(response["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        """Upload part `number` (1-based); returns what `complete_multipart` needs for it."""
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        response = self.client.upload_part(
            Bucket=self.bucket,
            Key=_safe_key(key),
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
        )
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}

    def complete_multipart(self, key: str, upload_id: str, parts: builtins.list[dict[str, Any]]) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=_safe_key(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": sorted(parts, key=lambda part: int(part["PartNumber"]))},
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=_safe_key(key), UploadId=upload_id)
        except ClientError:
            pass  # already completed, aborted or expired

    def pending_uploads(self, prefix: str) -> builtins.list[tuple[str, str]]:
        """(key, upload id) of the multipart uploads started under `prefix` and neither completed nor aborted."""
        response = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [(item["Key"], item["UploadId"]) for item in response.get("Uploads", [])]

    def metadata(self, key: str) -> dict[str, str]:
        response = self.client.head_object(Bucket=self.bucket, Key=_safe_key(key))
        return dict(response.get("Metadata", {}))

    def presigned_url(self, key: str, filename: str, expires_seconds: int = 300) -> str | None:
        url: str = self.presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": _safe_key(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_seconds,
        )
        return url

    def presigned_post(self, key: str, max_bytes: int, expires_seconds: int = 900) -> PresignedPost | None:
        """A form upload of exactly `key` (boto3 adds the key's condition), of 1 to `max_bytes` bytes: the store
        refuses anything else, so the file never passes through the API."""
        fields: dict[str, str] = {}
        conditions: builtins.list[Any] = [["content-length-range", 1, max_bytes]]
        if self.sse:
            fields["x-amz-server-side-encryption"] = self.sse
            conditions.append({"x-amz-server-side-encryption": self.sse})
        post = self.presigner.generate_presigned_post(
            self.bucket, _safe_key(key), Fields=fields, Conditions=conditions, ExpiresIn=expires_seconds
        )
        return PresignedPost(url=str(post["url"]), fields={name: str(value) for name, value in post["fields"].items()})

    def copy(self, source_key: str, dest_key: str) -> None:
        """A copy inside the store (no bytes through us); objects up to 5 GB, as copy_object allows.
        FileNotFoundError when the source is missing, as from the local folder."""
        from botocore.exceptions import ClientError

        extra = {"ServerSideEncryption": self.sse} if self.sse else {}
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=_safe_key(dest_key),
                CopySource={"Bucket": self.bucket, "Key": _safe_key(source_key)},
                **extra,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(source_key) from error
            raise


def create_storage(settings: StorageSettings) -> ObjectStorage:
    return S3Storage(settings) if settings.uses_s3 else LocalStorage(settings.local_dir)


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
