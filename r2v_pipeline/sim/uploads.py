"""DashScope's temporary upload flow: a policy from the API, a multipart POST to the
OSS host, and an ``oss://`` object bound to the account and model for 48 hours.

[guess] The OSS error codes and messages for a bad form follow OSS's usual XML
errors; no source documents them for this flow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..catalog import lookup
from .clock import beijing_time
from .replies import Refusal, dashscope_error, json_reply, oss_error
from .server import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from .state import Call, SimState

# Form fields the upload must carry, besides the file [sdk].
REQUIRED_FIELDS = ("OSSAccessKeyId", "Signature", "policy", "key", "success_action_status")


@dataclass(frozen=True)
class Policy:
    """A signed upload policy the simulator handed out."""

    text: str  # the base64 policy document the client sends back
    signature: str
    access_key_id: str
    account: str
    model: str
    upload_dir: str
    expires: float
    max_bytes: int


@dataclass(frozen=True)
class StoredObject:
    """A file uploaded to the simulated object store."""

    key: str
    account: str
    model: str
    data: bytes
    content_type: str
    stored: float


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart form."""

    data: bytes
    filename: str | None = None


class UploadStore:
    def __init__(self, secret: bytes):
        self._secret = secret
        self._policies: dict[str, Policy] = {}
        self._objects: dict[str, StoredObject] = {}
        # Told of each new policy and stored file (the state on disk listens).
        self.on_policy: Callable[[Policy], None] = lambda policy: None
        self.on_object: Callable[[StoredObject], None] = lambda stored: None

    def restore(self, policies: Iterable[Policy], objects: Iterable[StoredObject]) -> None:
        """Take back the policies and files a stopped simulator kept."""
        self._policies.update((p.text, p) for p in policies)
        self._objects.update((o.key, o) for o in objects)

    def new_policy(self, account: str, model: str, now: float, ttl: float, max_mb: int) -> Policy:
        folder = f"dashscope-instant/{account.removeprefix('acct-')}/{beijing_time(now)[:10]}/{uuid.uuid4()}"
        document = {
            "expiration": beijing_time(now + ttl),
            "conditions": [["content-length-range", 0, max_mb * 1024 * 1024], ["starts-with", "$key", folder]],
        }
        text = base64.b64encode(json.dumps(document).encode()).decode()
        signature = base64.b64encode(hmac.new(self._secret, text.encode(), hashlib.sha1).digest()).decode()
        key_id = "LTAI" + hashlib.sha256(self._secret + account.encode()).hexdigest()[:16]
        policy = Policy(text, signature, key_id, account, model, folder, now + ttl, max_mb * 1024 * 1024)
        self._policies[text] = policy
        self.on_policy(policy)
        return policy

    def store(self, fields: Mapping[str, FormPart], now: float) -> StoredObject | Refusal:
        """Check an upload form against its policy and keep the file."""
        missing = [name for name in (*REQUIRED_FIELDS, "file") if name not in fields]
        if missing:
            return Refusal(400, "InvalidArgument", f"missing form field(s): {', '.join(missing)}")
        text = _text(fields["policy"])
        policy = self._policies.get(text)
        if policy is None:
            return Refusal(403, "AccessDenied", "Invalid according to Policy: unknown policy.")
        if _text(fields["OSSAccessKeyId"]) != policy.access_key_id or _text(fields["Signature"]) != policy.signature:
            return Refusal(403, "SignatureDoesNotMatch", "The request signature does not match the policy.")
        if now > policy.expires:
            return Refusal(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = _text(fields["key"])
        if not key.startswith(policy.upload_dir + "/") or key == policy.upload_dir + "/":
            return Refusal(403, "AccessDenied", "Invalid according to Policy: the key is outside the upload folder.")
        data = fields["file"].data
        if len(data) > policy.max_bytes:
            return Refusal(400, "EntityTooLarge", "The file is larger than the policy allows.")
        if key in self._objects and _text(fields.get("x-oss-forbid-overwrite", FormPart(b""))).lower() == "true":
            return Refusal(409, "FileAlreadyExists", "The object already exists.")
        content_type = _text(fields.get("x-oss-content-type", FormPart(b"application/octet-stream")))
        stored = StoredObject(key, policy.account, policy.model, data, content_type, now)
        self._objects[key] = stored
        self.on_object(stored)
        return stored

    def lookup(self, key: str, account: str, model: str, now: float, ttl: float) -> StoredObject | str:
        """The object under ``key`` for this account and model, or why it cannot be read."""
        stored = self._objects.get(key)
        if stored is None:
            return "no such uploaded file"
        if now > stored.stored + ttl:
            return "the uploaded file has expired"
        if stored.account != account:
            return "the uploaded file belongs to another account"
        if stored.model != model:
            return f"the uploaded file was uploaded for {stored.model}, not {model}"
        return stored


# --- routes ---------------------------------------------------------------


async def get_policy(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    if req.query.get("action") != "getPolicy":
        return dashscope_error(400, "InvalidParameter", "The action parameter must be getPolicy.", call.request_id)
    model = req.query.get("model", "")
    if lookup(call.provider or "", model) is None:  # [guess] the submit's answer for an unknown model
        return dashscope_error(400, "InvalidParameter", "Model not exist.", call.request_id)
    assert call.account is not None  # the route requires a key
    config = state.config
    policy = state.uploads.new_policy(call.account, model, state.clock.now(), config.policy_ttl, config.max_upload_mb)
    data = {
        "policy": policy.text,
        "signature": policy.signature,
        "upload_dir": policy.upload_dir,
        "upload_host": f"{state.base_url}/oss",
        "expire_in_seconds": int(config.policy_ttl),
        "max_file_size_mb": config.max_upload_mb,
        "oss_access_key_id": policy.access_key_id,
        "x_oss_object_acl": "private",
        "x_oss_forbid_overwrite": "true",
    }
    return json_reply(200, {"request_id": call.request_id, "data": data})


async def post_object(state: SimState, req: HttpRequest, call: Call, params: Mapping[str, str]) -> HttpResponse:
    fields = parse_form(req.header("content-type"), req.body)
    if fields is None:
        return oss_error(400, "InvalidArgument", "The body must be multipart/form-data.", call.request_id)
    result = state.uploads.store(fields, state.clock.now())
    if isinstance(result, Refusal):
        return oss_error(result.status, result.code, result.message, call.request_id)
    call.account = result.account
    # OSS answers 204 unless success_action_status asks for 200; the SDK only accepts 200 [sdk].
    status = 200 if _text(fields["success_action_status"]) == "200" else 204
    return HttpResponse(status, b"", None, [("x-oss-request-id", call.request_id), ("etag", f'"{hashlib.md5(result.data).hexdigest().upper()}"')])


def parse_form(content_type: str, body: bytes) -> dict[str, FormPart] | None:
    """The fields of a multipart/form-data body (the first part of each name), or None."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        return None
    fields: dict[str, FormPart] = {}
    for raw in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if raw.startswith(b"--"):
            break  # the closing delimiter
        head, sep, content = raw.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        part = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part[name.strip()] = value.strip()
        field = part.get_param("name", header="content-disposition")
        if isinstance(field, str) and field not in fields:
            filename = part.get_param("filename", header="content-disposition")
            fields[field] = FormPart(content.removesuffix(b"\r\n"), filename if isinstance(filename, str) else None)
    return fields


def _text(part: FormPart) -> str:
    return part.data.decode("utf-8", "replace").strip()
