"""hoopd's own gateway tokens: signing keys, claims, RFC 8693 token exchange,
verification, the shared store of issued tokens and revocations, and SSH
certificates issued for a token.

Modules: :mod:`~hoopd.tokens.keys` (ES256 signing keys and the JWKS),
:mod:`~hoopd.tokens.claims` (the claim set and its mapping to an ``Identity``),
:mod:`~hoopd.tokens.store` (issued tokens, revocations, audit events in SQLite),
:mod:`~hoopd.tokens.verifier` (the ``TokenVerifier`` for gateway tokens),
:mod:`~hoopd.tokens.exchange` (the narrowing rules), :mod:`~hoopd.tokens.service`
(the token endpoint and revocation), :mod:`~hoopd.tokens.api` (admin HTTP handlers)
and :mod:`~hoopd.tokens.cli` (``hoopd token exchange``, ``hoopd revoke``,
``hoopd keys``); for SSH, :mod:`~hoopd.tokens.ssh_cert` (the certificate format),
:mod:`~hoopd.tokens.ssh_ca` (the CA key), :mod:`~hoopd.tokens.ssh_issue` (issuing
for a token) and :mod:`~hoopd.tokens.ssh_cert_cli` (``hoopd ssh-cert``).
"""
