"""How kopf logs in: the same cluster configuration as our own KubeClient (`hrw_api.kubeconfig`).

kopf's own kubeconfig login reads only `$KUBECONFIG`'s first file, without contexts, exec
plugins or relative paths resolved the way kubectl does. This module hands kopf a
`ConnectionInfo` built from the configuration `hrw_api.kubeconfig` loads with the `kubernetes`
library, with the exec plugin's expiry, so that kopf logs in again (and the plugin runs again)
before the token runs out. kopf cannot send a different TLS server name (kubeconfig's
`tls-server-name`); the operator's own client can.
"""

from __future__ import annotations

import kopf

from hrw_api import kubeconfig

__all__ = ["connection_info"]


def connection_info(path: str | None, context: str | None) -> kopf.ConnectionInfo:
    """Blocking (an exec plugin may run): kopf calls synchronous login handlers in a thread."""
    cluster = kubeconfig.load(path, context)
    header = cluster.credentials.authorization_now()
    scheme, _, token = header.partition(" ") if header else ("", "", "")
    return kopf.ConnectionInfo(
        server=cluster.server,
        ca_data=cluster.ca_pem,
        insecure=cluster.insecure or None,
        scheme=scheme or None,
        token=token or None,
        certificate_data=cluster.client_cert_pem,
        private_key_data=cluster.client_key_pem,
        default_namespace=cluster.namespace,
        proxy_url=cluster.proxy,
        expiration=cluster.credentials.expiry,
    )
