#!/usr/bin/env python3
"""Write Home Assistant's auth storage with one owner and a long-lived access token, offline.

Usage: <core venv>/bin/python make_token.py CONFIG_DIR  (before the first start; needs PyJWT,
which the core installs). Writes CONFIG_DIR/TOKEN and prints the token.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import sys
import time
import uuid

import jwt

TEN_YEARS = 10 * 365 * 86400


def main(config_dir: str) -> str:
    os.makedirs(os.path.join(config_dir, ".storage"), exist_ok=True)
    user_id, refresh_id = uuid.uuid4().hex, uuid.uuid4().hex
    jwt_key = secrets.token_hex(64)
    now = datetime.datetime.now(datetime.UTC).isoformat()
    auth = {
        "version": 1,
        "minor_version": 1,
        "key": "auth",
        "data": {
            "users": [
                {
                    "id": user_id,
                    "group_ids": ["system-admin"],
                    "is_owner": True,
                    "is_active": True,
                    "name": "tests",
                    "system_generated": False,
                    "local_only": False,
                }
            ],
            "groups": [
                {"id": "system-admin", "name": "Administrators"},
                {"id": "system-users", "name": "Users"},
                {"id": "system-read-only", "name": "Read Only"},
            ],
            "credentials": [],
            "refresh_tokens": [
                {
                    "id": refresh_id,
                    "user_id": user_id,
                    "client_id": None,
                    "client_name": "haunt-fm-tests",
                    "client_icon": None,
                    "token_type": "long_lived_access_token",
                    "created_at": now,
                    "access_token_expiration": float(TEN_YEARS),
                    "token": secrets.token_hex(64),
                    "jwt_key": jwt_key,
                    "last_used_at": None,
                    "last_used_ip": None,
                    "expire_at": None,
                    "credential_id": None,
                    "version": "2024.3.3",
                }
            ],
        },
    }
    onboarding = {
        "version": 4,
        "minor_version": 1,
        "key": "onboarding",
        "data": {"done": ["user", "core_config", "analytics", "integration"]},
    }
    for name, data in (("auth", auth), ("onboarding", onboarding)):
        path = os.path.join(config_dir, ".storage", name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
        os.chmod(path, 0o600)
    issued = int(time.time())
    token = jwt.encode(
        {"iss": refresh_id, "iat": issued, "exp": issued + TEN_YEARS}, jwt_key, algorithm="HS256"
    )
    with open(os.path.join(config_dir, "TOKEN"), "w", encoding="utf-8") as f:
        f.write(token)
    return token


if __name__ == "__main__":
    print(main(sys.argv[1]))
