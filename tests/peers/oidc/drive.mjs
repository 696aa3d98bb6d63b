#!/usr/bin/env node
// Headless user for provider.mjs: signs in and approves or denies with plain
// HTTP requests (cookies kept), the way a browser would submit the forms.
//
// COMMAND LINE
//
//   node drive.mjs authorize URL [--user U] [--password-file F] [--deny]
//                                [--state-override S]
//       Follows the authorization request URL through login and consent. When
//       the provider redirects to a URL outside its own origin (the client's
//       redirect_uri), the driver requests that URL, with the state parameter
//       replaced by S when --state-override is given. An end-session URL
//       (RP-initiated logout) works the same way: the driver confirms the
//       sign-out and requests the post-logout redirect URI, if there is one.
//   node drive.mjs device --verification-uri URL [--user-code CODE]
//                         [--user U] [--password-file F] [--deny]
//       Enters the user code (taken from --user-code, from OIDC_DRIVE_USER_CODE,
//       or from a verification_uri_complete URL), signs in and approves or
//       denies at the consent page.
//
// --deny rejects at the consent page, so the provider returns access_denied.
// The password comes from --password-file (first line), then the environment
// variable OIDC_DRIVE_PASSWORD, then provider.mjs's default test password.
// For HTTPS, set NODE_EXTRA_CA_CERTS to the test CA's PEM file.
// OIDC_DRIVE_COOKIE_JAR=FILE keeps the cookies (the provider's session) in
// FILE between runs, as a browser would: a second authorization then skips
// the login, and an end-session URL ends that same session.
//
// STDOUT: one JSON line with the result, for example
//   {"event":"authorize","outcome":"code","callback_status":200,...}
//   {"event":"authorize","outcome":"error","error":"access_denied",...}
//   {"event":"device","outcome":"approved"}
// Outcomes: "code" and "error" (what reached the redirect URI), "signed_out"
// (after an end-session URL), "approved",
// "denied", "login_rejected" (the provider rejected the password) and
// "failed" (anything unexpected, with "message"). Authorization codes, tokens,
// state values and passwords are never printed.
//
// EXIT CODES: 0 when the flow ran to its end (a delivered callback, also one
// with an error, or a finished device approval or denial), 3 when the login
// was rejected, 2 on usage errors, 1 otherwise.

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';

const DEFAULT_PASSWORD = 'bridge-test-password';
const MAX_STEPS = 40;
const AUTO_SUBMIT = /document\.forms\[0\]\.submit\(\)/u;

class DriveError extends Error {}

function usage(message) {
  process.stderr.write(`drive.mjs: ${message}\n`);
  process.exit(2);
}

// The session of this run, saved to the cookie jar on exit.
let activeSession;

function report(fields, exitCode) {
  activeSession?.save();
  process.stdout.write(`${JSON.stringify(fields)}\n`);
  process.exit(exitCode);
}

function readPassword(file) {
  if (file) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      usage(`failed to read --password-file: ${error.message}`);
    }
    return text.split(/\r?\n/u)[0];
  }
  return process.env.OIDC_DRIVE_PASSWORD || DEFAULT_PASSWORD;
}

function decodeHtml(text) {
  return text
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

function attribute(tag, name) {
  const match = new RegExp(`\\s${name}="([^"]*)"`, 'u').exec(tag);
  return match ? decodeHtml(match[1]) : undefined;
}

// Finds the <form> with this id (the first form when id is undefined) and
// returns its action and hidden fields.
function findForm(html, id) {
  const forms = html.match(/<form\b[^>]*>[\s\S]*?<\/form>/gu) ?? [];
  for (const form of forms) {
    const openTag = /<form\b[^>]*>/u.exec(form)[0];
    if (id !== undefined && attribute(openTag, 'id') !== id) {
      continue;
    }
    const fields = new URLSearchParams();
    for (const input of form.match(/<input\b[^>]*>/gu) ?? []) {
      if (attribute(input, 'type') === 'hidden') {
        fields.append(attribute(input, 'name'), attribute(input, 'value') ?? '');
      }
    }
    return { action: attribute(openTag, 'action'), fields };
  }
  return undefined;
}

function pageTitle(html) {
  const match = /<title>([^<]*)<\/title>/u.exec(html);
  return match ? decodeHtml(match[1]).trim() : '';
}

// A browser-like session against one origin: keeps cookies, does not follow
// redirects by itself.
class Session {
  constructor(origin) {
    this.origin = origin;
    this.cookies = new Map();
    this.signedOut = false;
    this.jarPath = process.env.OIDC_DRIVE_COOKIE_JAR;
    if (this.jarPath && fs.existsSync(this.jarPath)) {
      const saved = JSON.parse(fs.readFileSync(this.jarPath, 'utf8'));
      this.cookies = new Map(Object.entries(saved[origin] ?? {}));
    }
    activeSession = this;
  }

  // Writes the cookies back to OIDC_DRIVE_COOKIE_JAR, so the next run
  // continues the same provider session.
  save() {
    if (!this.jarPath) {
      return;
    }
    const saved = fs.existsSync(this.jarPath) ? JSON.parse(fs.readFileSync(this.jarPath, 'utf8')) : {};
    saved[this.origin] = Object.fromEntries(this.cookies);
    fs.writeFileSync(this.jarPath, JSON.stringify(saved), { mode: 0o600 });
  }

  async request(url, form) {
    const headers = {};
    if (this.cookies.size > 0) {
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    }
    const init = { method: 'GET', headers, redirect: 'manual' };
    if (form) {
      init.method = 'POST';
      headers['content-type'] = 'application/x-www-form-urlencoded';
      init.body = form.toString();
    }

    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new DriveError(`request to ${new URL(url).origin}${new URL(url).pathname} failed: ${error.cause?.message ?? error.message}`);
    }
    this.storeCookies(response);
    const body = await response.text();
    return { status: response.status, location: response.headers.get('location'), body };
  }

  storeCookies(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const equals = pair.indexOf('=');
      const name = pair.slice(0, equals).trim();
      const value = pair.slice(equals + 1).trim();
      const expired = attributes.some((part) => {
        const [key, val] = part.trim().split('=');
        if (key.toLowerCase() === 'max-age') {
          return Number(val) <= 0;
        }
        if (key.toLowerCase() === 'expires') {
          return Date.parse(val) <= Date.now();
        }
        return false;
      });
      if (expired || value === '') {
        this.cookies.delete(name);
      } else {
        this.cookies.set(name, value);
      }
    }
  }
}

// Submits the login form on this page. Returns the next response.
async function signIn(session, pageUrl, html, credentials) {
  const login = findForm(html, 'login');
  const fields = login.fields;
  fields.set('login', credentials.user);
  fields.set('password', credentials.password);
  const response = await session.request(new URL(login.action, pageUrl), fields);
  if (response.status === 401) {
    report({ event: credentials.flow, outcome: 'login_rejected', user: credentials.user }, 3);
  }
  return response;
}

async function decideConsent(session, pageUrl, html, deny) {
  const form = findForm(html, deny ? 'deny' : 'consent');
  const fields = form.fields;
  fields.set('decision', deny ? 'deny' : 'approve');
  return session.request(new URL(form.action, pageUrl), fields);
}

// Walks redirects and interaction pages from `start` until `finished`
// returns a result for a URL or page.
async function walk(session, start, options, finished) {
  let url = new URL(start);
  let form;
  for (let step = 0; step < MAX_STEPS; step += 1) {
    const outside = finished.redirect(url);
    if (outside && form) {
      throw new DriveError('the provider posts the response to the client (response_mode=form_post), which the driver does not support');
    }
    if (outside) {
      return outside;
    }

    const response = await session.request(url, form);
    form = undefined;
    if (response.status >= 300 && response.status < 400 && response.location) {
      url = new URL(response.location, url);
      continue;
    }

    const html = response.body;
    const done = finished.page(response, html);
    if (done) {
      return done;
    }

    let next;
    if (response.status === 200 && findForm(html, 'login')) {
      next = await signIn(session, url, html, options);
    } else if (response.status === 200 && findForm(html, 'consent')) {
      next = await decideConsent(session, url, html, options.deny);
    } else if (response.status === 200 && findForm(html, 'op.logoutForm')) {
      const logout = findForm(html, 'op.logoutForm');
      logout.fields.set('logout', 'yes');
      session.signedOut = true;
      url = new URL(logout.action, url);
      form = logout.fields;
      continue;
    } else if (response.status === 200 && AUTO_SUBMIT.test(html) && findForm(html)) {
      // oidc-provider's self-submitting pages, such as the one behind
      // verification_uri_complete, post their only form from a script.
      const autoForm = findForm(html);
      url = new URL(autoForm.action, url);
      form = autoForm.fields;
      continue;
    } else if (response.status === 200 && finished.form(html)) {
      const [action, fields] = finished.form(html);
      url = new URL(action, url);
      form = fields;
      continue;
    } else {
      throw new DriveError(`unexpected page "${pageTitle(html)}" (HTTP ${response.status}) at ${url.origin}${url.pathname}`);
    }

    if (next.status >= 300 && next.status < 400 && next.location) {
      url = new URL(next.location, url);
      continue;
    }
    throw new DriveError(`form submission returned HTTP ${next.status} ("${pageTitle(next.body)}")`);
  }
  throw new DriveError(`no result after ${MAX_STEPS} requests`);
}

async function authorize(positionals, values, credentials) {
  if (positionals.length !== 1) {
    usage('authorize takes exactly one URL: drive.mjs authorize URL [options]');
  }
  let start;
  try {
    start = new URL(positionals[0]);
  } catch {
    usage('the authorization request URL is not a valid URL');
  }
  const session = new Session(start.origin);

  const finished = {
    redirect: (url) => (url.origin === session.origin ? undefined : url),
    page: (response, html) => {
      if (html.includes('id="signed-out"')) {
        return { signedOut: true };
      }
      if (response.status >= 400 && !findForm(html, 'login')) {
        return { providerError: `HTTP ${response.status} "${pageTitle(html)}"` };
      }
      return undefined;
    },
    form: () => undefined,
  };

  const result = await walk(session, start, credentials, finished);
  if (result.providerError) {
    report({ event: 'authorize', outcome: 'failed', message: `the provider returned ${result.providerError}` }, 1);
  }

  if (result.signedOut) {
    report({ event: 'authorize', outcome: 'signed_out', redirect_uri: null }, 0);
  }

  const callback = result;
  const error = callback.searchParams.get('error');
  const hasCode = callback.searchParams.has('code');
  const stateOverride = values['state-override'];
  if (stateOverride !== undefined) {
    callback.searchParams.set('state', stateOverride);
  }

  let status;
  try {
    const response = await fetch(callback, { redirect: 'manual' });
    status = response.status;
    await response.arrayBuffer();
  } catch (cause) {
    report({
      event: 'authorize',
      outcome: 'failed',
      message: `the redirect URI ${callback.origin}${callback.pathname} failed: ${cause.cause?.message ?? cause.message}`,
    }, 1);
  }

  let outcome = 'failed';
  if (error) {
    outcome = 'error';
  } else if (hasCode) {
    outcome = 'code';
  } else if (session.signedOut) {
    outcome = 'signed_out';
  }
  report({
    event: 'authorize',
    outcome,
    error: error ?? undefined,
    redirect_uri: `${callback.origin}${callback.pathname}`,
    state_overridden: stateOverride !== undefined,
    callback_status: status,
  }, outcome === 'failed' ? 1 : 0);
}

async function device(values, credentials) {
  const address = values['verification-uri'];
  if (!address) {
    usage('device needs --verification-uri URL');
  }
  let start;
  try {
    start = new URL(address);
  } catch {
    usage(`invalid --verification-uri '${address}': not a URL`);
  }
  const userCode = values['user-code'] || process.env.OIDC_DRIVE_USER_CODE || start.searchParams.get('user_code');
  if (!userCode) {
    usage('device needs the user code: --user-code CODE, OIDC_DRIVE_USER_CODE or a verification_uri_complete URL');
  }
  const session = new Session(start.origin);

  const finished = {
    redirect: (url) => {
      if (url.origin !== session.origin) {
        throw new DriveError(`the provider redirected to another origin, ${url.origin}`);
      }
      return undefined;
    },
    page: (response, html) => {
      const options = credentials;
      if (html.includes('id="device-done"')) {
        return { outcome: 'approved' };
      }
      const input = findForm(html, 'op.deviceInputForm');
      const error = /<p id="error">([^<]*)<\/p>/u.exec(html);
      if (error && input) {
        const name = decodeHtml(error[1]);
        // oidc-provider shows the code entry page again with AbortedError
        // once the consent was denied.
        if (name === 'AbortedError' && options.deny) {
          return { outcome: 'denied' };
        }
        return { outcome: 'failed', message: `the provider rejected the user code: ${name}` };
      }
      if (response.status >= 400 && !findForm(html, 'login')) {
        return { outcome: 'failed', message: `the provider returned HTTP ${response.status} "${pageTitle(html)}"` };
      }
      return undefined;
    },
    form: (html) => {
      const confirm = findForm(html, 'op.deviceConfirmForm');
      if (confirm) {
        return [confirm.action, confirm.fields];
      }
      const input = findForm(html, 'op.deviceInputForm');
      if (input) {
        input.fields.set('user_code', userCode);
        return [input.action, input.fields];
      }
      return undefined;
    },
  };

  const result = await walk(session, start, credentials, finished);
  report({ event: 'device', ...result }, result.outcome === 'failed' ? 1 : 0);
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        user: { type: 'string', default: 'tester' },
        'password-file': { type: 'string' },
        deny: { type: 'boolean', default: false },
        'state-override': { type: 'string' },
        'verification-uri': { type: 'string' },
        'user-code': { type: 'string' },
      },
    });
  } catch (error) {
    usage(`${error.message}; see the options in this file's header`);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  const credentials = {
    user: values.user,
    password: readPassword(values['password-file']),
    deny: values.deny,
    flow: command,
  };

  try {
    if (command === 'authorize') {
      await authorize(rest, values, credentials);
    } else if (command === 'device') {
      if (rest.length > 0) {
        usage(`device takes no positional arguments, got '${rest[0]}'`);
      }
      await device(values, credentials);
    } else {
      usage(`unknown command '${command ?? ''}': expected authorize or device`);
    }
  } catch (error) {
    if (error instanceof DriveError) {
      report({ event: command, outcome: 'failed', message: error.message }, 1);
    }
    throw error;
  }
}

main().catch((error) => {
  process.stderr.write(`drive.mjs: ${error.stack ?? error}\n`);
  process.exit(1);
});
