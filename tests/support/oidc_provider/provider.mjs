// A real OpenID Connect provider (npm oidc-provider) for hoopd's tests.
//
//   node provider.mjs PORT KEYS_FILE [--rotate]
//
// Listens on 127.0.0.1:PORT only, issuer http://127.0.0.1:PORT, and prints "ready" on
// stdout once it accepts connections. KEYS_FILE holds the signing keys (a private JWKS):
// created when missing; --rotate puts a fresh RSA key first (it signs from then on) and
// keeps the older keys published, as an operator rotating keys would. The in-memory
// store means grants do not survive a restart; JWT access tokens need no store.
//
// devInteractions are on: their login page accepts any password. Tests only.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const AUDIENCE = 'urn:hoopd';
const OTHER_AUDIENCE = 'urn:other';
const ES256_AUDIENCE = 'urn:hoopd-es256';

// Groups put into access tokens, by account id (device flow) or client id (machines).
const GROUPS = {
  alice: ['dba', 'oncall'],
  bob: ['dev'],
  'hoopd-machine': ['robots'],
};

function newKey(type) {
  const options = type === 'RSA' ? { modulusLength: 2048 } : { namedCurve: 'P-256' };
  const { privateKey } = generateKeyPairSync(type === 'RSA' ? 'rsa' : 'ec', options);
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `${type.toLowerCase()}-${randomBytes(6).toString('hex')}`, use: 'sig' };
}

function loadKeys(path, rotate) {
  let keys = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')).keys : [];
  if (keys.length === 0) {
    keys = [newKey('RSA'), newKey('EC')];
  } else if (rotate) {
    keys = [newKey('RSA'), ...keys];
  }
  writeFileSync(path, JSON.stringify({ keys }), { mode: 0o600 });
  return { keys };
}

const [portText, keysFile, ...flags] = process.argv.slice(2);
const port = Number.parseInt(portText, 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !keysFile) {
  process.stderr.write('usage: node provider.mjs PORT KEYS_FILE [--rotate]\n');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const RESOURCE_SERVERS = {
  [AUDIENCE]: { scope: 'hoopd', audience: AUDIENCE },
  [OTHER_AUDIENCE]: { scope: 'other', audience: OTHER_AUDIENCE },
  // Its access tokens are signed with the EC key instead of the RSA one.
  [ES256_AUDIENCE]: { scope: 'es', audience: ES256_AUDIENCE, jwt: { sign: { alg: 'ES256' } } },
};

const provider = new Provider(issuer, {
  jwks: loadKeys(keysFile, flags.includes('--rotate')),
  clients: [
    {
      client_id: 'hoopd-machine',
      client_secret: 'machine-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'hoopd other es',
    },
    {
      client_id: 'hoopd-cli',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'none',
      scope: 'openid offline_access hoopd',
    },
  ],
  scopes: ['openid', 'offline_access', 'hoopd', 'other', 'es'],
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      // The device flow asks for openid too; without this its access token would be
      // an opaque one for the userinfo endpoint instead of a JWT for hoopd.
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        const server = RESOURCE_SERVERS[indicator];
        if (!server) {
          throw new Provider.errors.InvalidTarget();
        }
        return { accessTokenFormat: 'jwt', accessTokenTTL: 600, ...server };
      },
    },
  },
  extraTokenClaims: (_ctx, token) => {
    const who = token.accountId ?? token.clientId;
    return { groups: GROUPS[who] ?? [] };
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
server.on('error', (err) => {
  process.stderr.write(`cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
  process.exit(1);
});
