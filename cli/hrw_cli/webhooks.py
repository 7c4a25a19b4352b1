"""``hrw webhook token NAME``: make (or rotate) a RunbookWebhook's token and show it once.

A new token replaces the previous one at once: the cluster keeps only its sha256, in the Secret
``hrw-webhook.<name>`` owned by the webhook (``hrw_api.runbookwebhook.token_secret``), and the
proxy reads that Secret on every call. The token itself is printed here and nowhere else: not in
the cluster, not in a log. Deleting the Secret revokes the webhook's token; deleting the webhook
deletes the Secret with it.

The proxy's address is what callers reach (the chart's public Service); ``--proxy-url`` (or
``$HRW_PROXY_URL``) puts it into the printed URL and curl command.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from typing import Any

from hrw_api import RunbookWebhook, names
from hrw_api.errors import Conflict, InvalidObject, NotFound
from hrw_api.kubeclient import RUNBOOK_WEBHOOKS, SECRETS, KubeClient
from hrw_api.runbookwebhook import new_token, token_hash, token_secret
from hrw_cli.connection import add_connection_flags, client, namespace, synchronous
from hrw_cli.errors import CommandError

__all__ = ["register"]

PROXY_URL_ENV = "HRW_PROXY_URL"
PROXY_URL_PLACEHOLDER = "https://HRW-PROXY"


def call_example(url: str, token: str, allowed: tuple[str, ...]) -> str:
    """A curl command that calls the webhook (the token in a header, never in the URL)."""
    body = json.dumps({"parameters": {name: "VALUE" for name in allowed}})
    return (f"curl -fsS -X POST {shlex.quote(url)} \\\n"
            f"    -H {shlex.quote('Authorization: Bearer ' + token)} -H 'Content-Type: application/json' \\\n"
            f"    -d {shlex.quote(body)}")


async def _token(args: argparse.Namespace) -> int:
    ns = namespace(args)
    secret_name = names.webhook_token_secret_name(args.webhook)
    async with await client(args) as kube:
        try:
            webhook = RunbookWebhook.parse(await kube.get(RUNBOOK_WEBHOOKS.path(ns, args.webhook)))
        except NotFound:
            raise CommandError(f"RunbookWebhook {ns}/{args.webhook} not found") from None
        except InvalidObject as exc:
            raise CommandError(f"RunbookWebhook {ns}/{args.webhook} does not fit the hrw contract: {exc}") from None
        token = new_token()
        secret = token_secret(webhook, token_hash(token))
        rotated = await _store(kube, ns, secret_name, secret)
    url = (args.proxy_url or os.environ.get(PROXY_URL_ENV) or PROXY_URL_PLACEHOLDER).rstrip("/") \
        + names.webhook_path(ns, args.webhook)
    if args.quiet:
        print(token)
        return 0
    print(f"RunbookWebhook {ns}/{args.webhook}: a new token{' (the previous one no longer works)' if rotated else ''}.")
    print(f"It is shown this once; the cluster keeps only its sha256 (Secret {secret_name}).\n")
    print(f"  URL:    POST {url}")
    print(f"  Header: Authorization: Bearer {token}\n")
    print(call_example(url, token, webhook.spec.allowed_parameters))
    if not (args.proxy_url or os.environ.get(PROXY_URL_ENV)):
        print(f"\n({PROXY_URL_PLACEHOLDER} stands for your hrw proxy's public address: --proxy-url or "
              f"${PROXY_URL_ENV} fills it in.)")
    return 0


async def _store(kube: KubeClient, ns: str, name: str, secret: dict[str, Any]) -> bool:
    """Create the token Secret, or replace the hash in the existing one; True when it replaced one."""
    try:
        await kube.create(SECRETS.path(ns), secret)
        return False
    except Conflict:
        pass
    existing = await kube.get(SECRETS.path(ns, name))
    if existing.get("type") != names.SECRET_TYPE_WEBHOOK_TOKEN:
        raise CommandError(f"Secret {ns}/{name} exists and is not a webhook token (type "
                           f"{existing.get('type')!r}); remove it or rename the webhook")
    secret["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
    await kube.replace(SECRETS.path(ns, name), secret)
    return True


def register(subparsers: Any) -> None:
    webhook = subparsers.add_parser("webhook", help="RunbookWebhooks: make or rotate a webhook's token")
    webhook.set_defaults(help_parser=webhook)
    commands = webhook.add_subparsers(title="webhook commands", metavar="COMMAND")
    token = commands.add_parser("token", help="make a new token for a RunbookWebhook (rotates: the old one stops "
                                              "working) and print it once with the URL to call")
    token.add_argument("webhook", help="RunbookWebhook name")
    token.add_argument("--proxy-url", default=None, metavar="URL",
                       help=f"the hrw proxy's public address, for the URL printed (default ${PROXY_URL_ENV})")
    token.add_argument("-q", "--quiet", action="store_true", help="print only the token (e.g. into a secret store)")
    add_connection_flags(token)
    token.set_defaults(handler=synchronous(_token))
