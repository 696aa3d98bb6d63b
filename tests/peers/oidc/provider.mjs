#!/usr/bin/env node
// OpenID provider on 127.0.0.1 for the login tests, built on the npm package
// oidc-provider (the version pinned in package.json).
//
// COMMAND LINE
//
//   node tests/peers/oidc/provider.mjs [options]
//
//   --port N              TCP port on 127.0.0.1; 0 (default) picks a free one.
//   --access-ttl S        Access token lifetime in seconds (default 600).
//   --refresh-ttl S       Refresh token lifetime in seconds (default 3600).
//   --device-ttl S        Device code lifetime in seconds (default 600).
//   --device-interval S   Polling interval of the device flow in seconds
//                         (default 5, the RFC 8628 default).
//   --slow-down-polls N   Return slow_down to the first N pending polls of each
//                         device code however far apart they come (default
//                         0), for clients that keep to the interval.
//   --no-device-flow      Disable the device flow: the metadata then has no
//                         device_authorization_endpoint.
//   --tls-cert PEM --tls-key PEM
//                         Serve HTTPS; the issuer then starts with https://.
//   --user NAME           Login name of the test user (default "tester").
//   --password-file FILE  File whose first line is the test user's password
//                         (default password: "bridge-test-password").
//
// STDOUT: exactly one JSON line once the socket accepts connections:
//
//   {"event":"ready","issuer":"http://127.0.0.1:PORT","client_id":"bridge-test",
//    "audience":"https://api.trax.test","user":"tester"}
//
// Everything else goes to stderr, one JSON line per request (method, path
// without query string, status). Codes, tokens and passwords are never logged.
//
// CLIENT: one public native client, client_id "bridge-test", no secret
// (token_endpoint_auth_method none), redirect URI http://127.0.0.1/callback
// and post-logout redirect URI http://127.0.0.1/logout. oidc-provider accepts
// those URIs with any port for native clients, as RFC 8252 section 7.3
// requires. Grant types: authorization_code, refresh_token and the device
// code. PKCE is required, and oidc-provider 9 supports S256 only.
//
// TOKENS: the access token is a JWT signed with RS256 (key in /jwks). Its
// "aud" is https://api.trax.test, the default RFC 8707 resource of every
// request. A "resource" parameter may name it, and any other value gets
// invalid_target. A refresh token is issued on every code and device code
// exchange, without the offline_access scope.
//
// INTERACTIONS: /interaction/UID shows a login form (user and password, a
// wrong password gets 401 and the form again) and then a consent form with
// "approve" and "deny" buttons. Denying redirects with error=access_denied.
// The device flow's pages (/device) are oidc-provider's, with the same login
// and consent. Polling the token endpoint for a pending device code faster
// than the interval returns slow_down and adds 5 s to that code's interval
// (RFC 8628 section 3.5); oidc-provider itself enforces no interval.
// Revocation (/token/revocation) and RP-initiated logout (/session/end) are
// enabled.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const CLIENT_ID = 'bridge-test';
const AUDIENCE = 'https://api.trax.test';
const DEFAULT_PASSWORD = 'bridge-test-password';
const SLOW_DOWN_STEP_S = 5;

function usage(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

function readOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        port: { type: 'string', default: '0' },
        'access-ttl': { type: 'string', default: '600' },
        'refresh-ttl': { type: 'string', default: '3600' },
        'device-ttl': { type: 'string', default: '600' },
        'device-interval': { type: 'string', default: '5' },
        'slow-down-polls': { type: 'string', default: '0' },
        'no-device-flow': { type: 'boolean', default: false },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        user: { type: 'string', default: 'tester' },
        'password-file': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (error) {
    usage(`${error.message}; run with the options listed in this file's header`);
  }

  const integer = (name, minimum) => {
    const text = parsed[name];
    const value = Number(text);
    if (!Number.isInteger(value) || value < minimum) {
      usage(`invalid --${name} '${text}': expected an integer >= ${minimum}`);
    }
    return value;
  };

  const options = {
    port: integer('port', 0),
    accessTtl: integer('access-ttl', 1),
    refreshTtl: integer('refresh-ttl', 1),
    deviceTtl: integer('device-ttl', 1),
    deviceInterval: integer('device-interval', 1),
    slowDownPolls: integer('slow-down-polls', 0),
    deviceFlow: !parsed['no-device-flow'],
    user: parsed.user,
    password: DEFAULT_PASSWORD,
    tls: undefined,
  };

  if (options.port > 65535) {
    usage(`invalid --port '${options.port}': expected 0 to 65535`);
  }
  if (Boolean(parsed['tls-cert']) !== Boolean(parsed['tls-key'])) {
    usage('--tls-cert and --tls-key go together; pass both or neither');
  }
  if (parsed['tls-cert']) {
    try {
      options.tls = {
        cert: fs.readFileSync(parsed['tls-cert']),
        key: fs.readFileSync(parsed['tls-key']),
      };
    } catch (error) {
      usage(`failed to read the TLS files: ${error.message}`);
    }
  }
  if (parsed['password-file']) {
    let text;
    try {
      text = fs.readFileSync(parsed['password-file'], 'utf8');
    } catch (error) {
      usage(`failed to read --password-file: ${error.message}`);
    }
    options.password = text.split(/\r?\n/u)[0];
    if (!options.password) {
      usage(`--password-file '${parsed['password-file']}' has an empty first line`);
    }
  }
  return options;
}

// Writes one JSON line to stderr, stamped with the time in ms since the
// Unix epoch, which the tests use to measure the gaps between polls.
function log(fields) {
  process.stderr.write(`${JSON.stringify({ ...fields, at_ms: Date.now() })}\n`);
}

function escapeHtml(text) {
  return String(text)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>
`;
}

function sameSecret(actual, expected) {
  // Hashing first gives both sides the same length for timingSafeEqual.
  const a = crypto.createHash('sha256').update(actual).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

function signingKeys() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  jwk.kid = crypto.randomBytes(8).toString('hex');
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  return { keys: [jwk] };
}

function configuration(options) {
  const resourceServer = {
    scope: 'openid profile email',
    audience: AUDIENCE,
    accessTokenTTL: options.accessTtl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };

  return {
    clients: [
      {
        client_id: CLIENT_ID,
        client_name: 'bridge',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/callback'],
        post_logout_redirect_uris: ['http://127.0.0.1/logout'],
        response_types: ['code'],
        grant_types: [
          'authorization_code',
          'refresh_token',
          ...(options.deviceFlow ? ['urn:ietf:params:oauth:grant-type:device_code'] : []),
        ],
      },
    ],
    jwks: signingKeys(),
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    pkce: { required: () => true },
    async findAccount(_ctx, id) {
      if (id !== options.user) {
        return undefined;
      }
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            name: 'Test User',
            preferred_username: id,
            email: `${id}@example.test`,
            email_verified: true,
          };
        },
      };
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: options.accessTtl,
      AuthorizationCode: 60,
      DeviceCode: options.deviceTtl,
      IdToken: 3600,
      Grant: 14 * 24 * 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      RefreshToken: options.refreshTtl,
    },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page(
            'Sign out',
            `${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes">sign out</button>
<button type="submit" form="op.logoutForm">stay signed in</button>`,
          );
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page('Signed out', '<p id="signed-out">signed out</p>');
        },
      },
      deviceFlow: {
        enabled: options.deviceFlow,
        userCodeInputSource: async (ctx, form, _out, err) => {
          const message = err ? `<p id="error">${escapeHtml(err.name)}</p>` : '';
          ctx.body = page('Enter the device code', `${message}${form}
<button type="submit" form="op.deviceInputForm">continue</button>`);
        },
        userCodeConfirmSource: async (ctx, form, client, _deviceInfo, userCode) => {
          ctx.body = page(
            'Confirm the device',
            `<p>${escapeHtml(client.clientName || client.clientId)} shows the code
<code>${escapeHtml(userCode)}</code></p>
${form}
<button type="submit" form="op.deviceConfirmForm">continue</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">abort</button>`,
          );
        },
        successSource: async (ctx) => {
          ctx.body = page('Device signed in', '<p id="device-done">approved</p>');
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource !== AUDIENCE) {
            throw new Provider.errors.InvalidTarget(`unknown resource; use ${AUDIENCE}`);
          }
          return resourceServer;
        },
      },
    },
  };
}

// Polling state of the device codes, keyed by the SHA-256 of the code so the
// codes themselves are not kept outside oidc-provider.
const devicePolls = new Map();

function deviceCodeKey(code) {
  return crypto.createHash('sha256').update(String(code)).digest('hex');
}

function addDevicePolling(provider, options) {
  provider.use(async (ctx, next) => {
    await next();
    const route = ctx.oidc?.route;

    if (route === 'device_authorization' && ctx.status === 200 && ctx.body) {
      ctx.body.interval = options.deviceInterval;
      return;
    }

    const grantType = ctx.oidc?.params?.grant_type;
    const pending = ctx.status === 400 && ctx.body?.error === 'authorization_pending';
    if (route !== 'token' || grantType !== 'urn:ietf:params:oauth:grant-type:device_code' || !pending) {
      return;
    }

    // NOTE: only pending polls are throttled. A poll that arrives too early
    // after the user approved still gets the tokens.
    const key = deviceCodeKey(ctx.oidc.params.device_code);
    const now = Date.now();
    const state = devicePolls.get(key) ?? { last: 0, interval: options.deviceInterval, polls: 0 };
    state.polls += 1;
    const forced = state.polls <= options.slowDownPolls;
    if (forced || now - state.last < state.interval * 1000) {
      state.interval += SLOW_DOWN_STEP_S;
      ctx.body = {
        error: 'slow_down',
        error_description: `polled sooner than the interval; wait ${state.interval} s between requests`,
      };
    }
    state.last = now;
    devicePolls.set(key, state);
  });
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) {
        reject(new Error('form body over 64 KiB'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(html);
}

function loginPage(uid, message) {
  const error = message ? `<p id="error">${escapeHtml(message)}</p>` : '';
  return page(
    'Sign in',
    `${error}<form id="login" method="post" action="/interaction/${escapeHtml(uid)}/login">
<input type="text" name="login" autocomplete="username">
<input type="password" name="password" autocomplete="current-password">
<button type="submit">sign in</button>
</form>`,
  );
}

function consentPage(uid, details) {
  const scopes = details.params.scope ?? '';
  return page(
    'Allow access',
    `<p>${escapeHtml(details.params.client_id)} requests: ${escapeHtml(scopes)}</p>
<form id="consent" method="post" action="/interaction/${escapeHtml(uid)}/confirm">
<button type="submit" name="decision" value="approve">approve</button>
</form>
<form id="deny" method="post" action="/interaction/${escapeHtml(uid)}/abort">
<button type="submit" name="decision" value="deny">deny</button>
</form>`,
  );
}

async function grantConsent(provider, details) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });

  if (prompt.details.missingOIDCScope) {
    grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  }
  if (prompt.details.missingOIDCClaims) {
    grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  }
  for (const [resource, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }
  return grant.save();
}

// Serves /interaction/UID (GET), /interaction/UID/login, /confirm and
// /abort (POST). Returns false for other paths.
async function handleInteraction(provider, options, req, res, path) {
  const match = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/u.exec(path);
  if (!match) {
    return false;
  }
  const [, uid, action] = match;
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    sendHtml(res, 400, page('Invalid interaction', '<p>the interaction cookie does not match</p>'));
    return true;
  }

  if (!action) {
    if (req.method !== 'GET') {
      sendHtml(res, 405, page('Method not allowed', ''));
    } else if (details.prompt.name === 'login') {
      sendHtml(res, 200, loginPage(uid));
    } else {
      sendHtml(res, 200, consentPage(uid, details));
    }
    return true;
  }

  if (req.method !== 'POST') {
    sendHtml(res, 405, page('Method not allowed', ''));
    return true;
  }
  const form = await readForm(req);

  if (action === 'login') {
    const login = form.get('login') ?? '';
    const password = form.get('password') ?? '';
    if (login !== options.user || !sameSecret(password, options.password)) {
      log({ event: 'login_rejected', user: login });
      sendHtml(res, 401, loginPage(uid, 'invalid user name or password'));
      return true;
    }
    log({ event: 'login', user: login });
    await provider.interactionFinished(req, res, { login: { accountId: login } }, {
      mergeWithLastSubmission: false,
    });
    return true;
  }

  if (action === 'confirm') {
    const grantId = await grantConsent(provider, details);
    log({ event: 'consent', decision: 'approve' });
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    return true;
  }

  log({ event: 'consent', decision: 'deny' });
  await provider.interactionFinished(req, res, {
    error: 'access_denied',
    error_description: 'the user denied the request',
  }, { mergeWithLastSubmission: false });
  return true;
}

async function main() {
  const options = readOptions();
  const server = options.tls ? https.createServer(options.tls) : http.createServer();

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const scheme = options.tls ? 'https' : 'http';
  const issuer = `${scheme}://127.0.0.1:${port}`;

  const provider = new Provider(issuer, configuration(options));
  addDevicePolling(provider, options);
  const callback = provider.callback();

  server.on('request', async (req, res) => {
    const path = new URL(req.url, issuer).pathname;
    res.on('finish', () => log({ event: 'request', method: req.method, path, status: res.statusCode }));
    try {
      if (!(await handleInteraction(provider, options, req, res, path))) {
        callback(req, res);
      }
    } catch (error) {
      log({ event: 'error', path, error: error.name, message: error.message });
      if (!res.headersSent) {
        sendHtml(res, error.statusCode ?? 500, page('Error', `<p id="error">${escapeHtml(error.name)}</p>`));
      }
    }
  });

  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  process.stdout.write(`${JSON.stringify({
    event: 'ready',
    issuer,
    client_id: CLIENT_ID,
    audience: AUDIENCE,
    user: options.user,
    device_flow: options.deviceFlow,
  })}\n`);
}

main().catch((error) => {
  process.stderr.write(`provider.mjs: ${error.stack ?? error}\n`);
  process.exit(1);
});
