//! The login test peers checked against each other: the OpenID provider
//! (tests/peers/oidc/provider.mjs), its headless user (drive.mjs) and the
//! /v1 stand-in's access token check. Every test plays the client itself,
//! so a provider that stops following OAuth 2.0, PKCE (RFC 7636), the
//! device flow (RFC 8628) or revocation (RFC 7009) fails here.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::oidc::{
    authorization_url, browser_script, drive_authorize, drive_device, end_session_url, http_client,
    jwt_claims, post_form, query_value, revoke, DriveOptions, Pkce, Provider, ProviderOptions,
    RedirectListener, AUDIENCE, DEVICE_CODE_GRANT, SCOPES,
};
use support::standin::Standin;

const REDIRECT_WAIT: Duration = Duration::from_secs(10);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs the authorization request through the driver and returns the
/// request that reached the redirect listener.
fn authorize(
    provider: &Provider,
    listener: &RedirectListener,
    pkce: &Pkce,
    state: &str,
    options: &DriveOptions,
) -> url::Url {
    let url = authorization_url(
        provider,
        &listener.redirect_uri(),
        Some(&pkce.challenge),
        state,
    );
    let drive = drive_authorize(&url, options);
    assert!(
        drive.status.success(),
        "drive.mjs failed: {} {}",
        drive.result,
        drive.stderr
    );
    listener
        .wait(REDIRECT_WAIT)
        .expect("the provider's redirect reached the listener")
}

/// Runs the authorization request through the driver and returns the
/// authorization code of the redirect.
fn authorized_code(
    provider: &Provider,
    listener: &RedirectListener,
    pkce: &Pkce,
    state: &str,
    options: &DriveOptions,
) -> String {
    let redirect = authorize(provider, listener, pkce, state, options);
    query_value(&redirect, "code").expect("the redirect carries a code")
}

fn exchange_code(
    client: &reqwest::blocking::Client,
    provider: &Provider,
    listener: &RedirectListener,
    code: &str,
    verifier: &str,
) -> (u16, Value) {
    let redirect_uri = listener.redirect_uri();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", provider.client_id.as_str()),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    post_form(client, &provider.endpoint("/token"), &form)
}

/// Runs a complete code flow and returns the token response.
fn sign_in(client: &reqwest::blocking::Client, provider: &Provider) -> Value {
    let listener = RedirectListener::start();
    let pkce = Pkce::new();
    let code = authorized_code(
        provider,
        &listener,
        &pkce,
        "state-1",
        &DriveOptions::default(),
    );
    let (status, tokens) = exchange_code(client, provider, &listener, &code, &pkce.verifier);
    assert_eq!(status, 200, "token response: {}", tokens["error"]);
    tokens
}

#[test]
fn discovery_lists_the_client_endpoints() {
    let provider = Provider::start(&ProviderOptions::default());
    let discovery = provider.discovery(&http_client(None));

    assert_eq!(discovery["issuer"], provider.issuer.as_str());
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "device_authorization_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
        "jwks_uri",
    ] {
        let url = discovery[endpoint].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&provider.issuer),
            "{endpoint} is {url:?}, expected a URL under {}",
            provider.issuer
        );
    }
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );
}

#[test]
fn no_device_flow_leaves_out_the_endpoint() {
    let provider = Provider::start(&ProviderOptions {
        no_device_flow: true,
        ..Default::default()
    });
    let discovery = provider.discovery(&http_client(None));

    assert!(discovery["token_endpoint"].is_string());
    assert!(
        discovery.get("device_authorization_endpoint").is_none(),
        "device_authorization_endpoint is {}",
        discovery["device_authorization_endpoint"]
    );
}

#[test]
fn pkce_code_flow_issues_tokens() {
    let provider = Provider::start(&ProviderOptions::default());
    let client = http_client(None);
    let listener = RedirectListener::start();
    let pkce = Pkce::new();

    let redirect = authorize(
        &provider,
        &listener,
        &pkce,
        "state-abc",
        &DriveOptions::default(),
    );
    assert_eq!(redirect.path(), "/callback");
    assert_eq!(
        query_value(&redirect, "state").as_deref(),
        Some("state-abc")
    );
    assert_eq!(
        query_value(&redirect, "iss").as_deref(),
        Some(provider.issuer.as_str())
    );
    let code = query_value(&redirect, "code").expect("the redirect carries a code");

    let (status, tokens) = exchange_code(&client, &provider, &listener, &code, &pkce.verifier);
    assert_eq!(status, 200, "token response: {}", tokens["error"]);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], SCOPES);
    assert!(
        tokens["refresh_token"].is_string(),
        "no refresh token issued"
    );
    assert!(tokens["id_token"].is_string(), "no ID token issued");

    let access_token = tokens["access_token"].as_str().expect("an access token");
    let claims = jwt_claims(access_token);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["iss"], provider.issuer.as_str());
    assert_eq!(claims["sub"], provider.user.as_str());
    assert_eq!(claims["client_id"], provider.client_id.as_str());
    assert!(claims["exp"].as_u64().unwrap_or(0) > unix_now());

    // An authorization code works once (RFC 6749 section 4.1.2).
    let (status, replay) = exchange_code(&client, &provider, &listener, &code, &pkce.verifier);
    assert_eq!(status, 400);
    assert_eq!(replay["error"], "invalid_grant");
}

#[test]
fn wrong_verifier_is_invalid_grant() {
    let provider = Provider::start(&ProviderOptions::default());
    let client = http_client(None);
    let listener = RedirectListener::start();
    let pkce = Pkce::new();

    let code = authorized_code(
        &provider,
        &listener,
        &pkce,
        "state-2",
        &DriveOptions::default(),
    );
    let other = Pkce::new();
    let (status, body) = exchange_code(&client, &provider, &listener, &code, &other.verifier);

    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(body.get("access_token").is_none());
}

#[test]
fn missing_challenge_is_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    let listener = RedirectListener::start();
    let url = authorization_url(&provider, &listener.redirect_uri(), None, "state-3");

    let drive = drive_authorize(&url, &DriveOptions::default());
    assert_eq!(drive.outcome(), "error", "driver result: {}", drive.result);
    let redirect = listener.wait(REDIRECT_WAIT).expect("an error redirect");

    assert_eq!(
        query_value(&redirect, "error").as_deref(),
        Some("invalid_request")
    );
    assert!(query_value(&redirect, "code").is_none());
}

#[test]
fn unregistered_redirect_path_is_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    let listener = RedirectListener::start();
    let pkce = Pkce::new();
    let redirect_uri = format!("http://127.0.0.1:{}/elsewhere", listener.port);
    let url = authorization_url(&provider, &redirect_uri, Some(&pkce.challenge), "state-4");

    let drive = drive_authorize(&url, &DriveOptions::default());

    assert_eq!(drive.outcome(), "failed", "driver result: {}", drive.result);
    assert!(!drive.status.success());
    assert!(listener.wait(Duration::from_secs(1)).is_none());
}

#[test]
fn wrong_password_is_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    let listener = RedirectListener::start();
    let pkce = Pkce::new();
    let url = authorization_url(
        &provider,
        &listener.redirect_uri(),
        Some(&pkce.challenge),
        "s",
    );
    let options = DriveOptions {
        password: Some("not-the-password".to_string()),
        ..Default::default()
    };

    let drive = drive_authorize(&url, &options);

    assert_eq!(
        drive.outcome(),
        "login_rejected",
        "driver result: {}",
        drive.result
    );
    assert_eq!(drive.status.code(), Some(3));
    assert!(listener.wait(Duration::from_secs(1)).is_none());
    assert!(provider.log().contains("\"login_rejected\""));
}

#[test]
fn denied_consent_redirects_access_denied() {
    let provider = Provider::start(&ProviderOptions::default());
    let listener = RedirectListener::start();
    let pkce = Pkce::new();
    let options = DriveOptions {
        deny: true,
        ..Default::default()
    };

    let redirect = authorize(&provider, &listener, &pkce, "state-5", &options);

    assert_eq!(
        query_value(&redirect, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_value(&redirect, "state").as_deref(), Some("state-5"));
    assert!(query_value(&redirect, "code").is_none());
}

#[test]
fn state_override_replaces_state() {
    let provider = Provider::start(&ProviderOptions::default());
    let listener = RedirectListener::start();
    let pkce = Pkce::new();
    let options = DriveOptions {
        state_override: Some("forged".to_string()),
        ..Default::default()
    };

    let redirect = authorize(&provider, &listener, &pkce, "state-6", &options);

    assert_eq!(query_value(&redirect, "state").as_deref(), Some("forged"));
    assert!(query_value(&redirect, "code").is_some());
}

#[test]
fn refresh_and_revocation() {
    let provider = Provider::start(&ProviderOptions::default());
    let client = http_client(None);
    let tokens = sign_in(&client, &provider);
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
    let token_url = provider.endpoint("/token");

    let refresh = |token: &str| {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", provider.client_id.as_str()),
            ("refresh_token", token),
        ];
        post_form(&client, &token_url, &form)
    };

    let (status, refreshed) = refresh(&refresh_token);
    assert_eq!(status, 200, "refresh response: {}", refreshed["error"]);
    let access_token = refreshed["access_token"]
        .as_str()
        .expect("a new access token");
    assert_eq!(jwt_claims(access_token)["aud"], AUDIENCE);
    // oidc-provider rotates refresh tokens of public clients, so the new one
    // is the one to revoke.
    let current = refreshed["refresh_token"]
        .as_str()
        .unwrap_or(&refresh_token)
        .to_string();

    assert_eq!(revoke(&client, &provider, &current, "refresh_token"), 200);
    let (status, after) = refresh(&current);
    assert_eq!(status, 400);
    assert_eq!(after["error"], "invalid_grant");
}

#[test]
fn end_session_signs_out_and_revokes() {
    let provider = Provider::start(&ProviderOptions::default());
    let client = http_client(None);
    let directory = tempfile::tempdir().unwrap();
    let options = DriveOptions {
        cookie_jar: Some(directory.path().join("cookies.json")),
        ..Default::default()
    };

    let listener = RedirectListener::start();
    let pkce = Pkce::new();
    let code = authorized_code(&provider, &listener, &pkce, "state-8", &options);
    let (status, tokens) = exchange_code(&client, &provider, &listener, &code, &pkce.verifier);
    assert_eq!(status, 200, "token response: {}", tokens["error"]);
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    // The saved session skips the login form on the second authorization.
    let second = RedirectListener::start();
    let again = authorize(&provider, &second, &Pkce::new(), "state-9", &options);
    assert!(query_value(&again, "code").is_some());
    assert_eq!(provider.log().matches("\"event\":\"login\"").count(), 1);

    let logout_listener = RedirectListener::start();
    let logout_uri = format!("http://127.0.0.1:{}/logout", logout_listener.port);
    let drive = drive_authorize(&end_session_url(&provider, &logout_uri, "bye"), &options);
    assert_eq!(
        drive.outcome(),
        "signed_out",
        "driver result: {}",
        drive.result
    );
    let arrived = logout_listener
        .wait(REDIRECT_WAIT)
        .expect("the post-logout redirect reached the listener");
    assert_eq!(arrived.path(), "/logout");
    assert_eq!(query_value(&arrived, "state").as_deref(), Some("bye"));

    // Without offline_access the grant ends with the session.
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", provider.client_id.as_str()),
        ("refresh_token", refresh_token),
    ];
    let (status, body) = post_form(&client, &provider.endpoint("/token"), &form);
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

/// Starts a device authorization and returns its response.
fn start_device(client: &reqwest::blocking::Client, provider: &Provider) -> Value {
    let form = [
        ("client_id", provider.client_id.as_str()),
        ("scope", SCOPES),
    ];
    let (status, body) = post_form(client, &provider.endpoint("/device/auth"), &form);
    assert_eq!(status, 200, "device authorization response: {body}");
    body
}

fn poll_device(
    client: &reqwest::blocking::Client,
    provider: &Provider,
    device_code: &str,
) -> (u16, Value) {
    let form = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("client_id", provider.client_id.as_str()),
        ("device_code", device_code),
    ];
    post_form(client, &provider.endpoint("/token"), &form)
}

#[test]
fn device_flow_approve_and_slow_down() {
    let provider = Provider::start(&ProviderOptions {
        device_interval_s: Some(1),
        ..Default::default()
    });
    let client = http_client(None);
    let device = start_device(&client, &provider);
    let device_code = device["device_code"].as_str().expect("a device_code");
    let user_code = device["user_code"].as_str().expect("a user_code");
    let verification_uri = device["verification_uri"]
        .as_str()
        .expect("a verification_uri");
    assert_eq!(device["interval"], 1);
    assert!(device["expires_in"].as_u64().unwrap_or(0) > 0);

    let (status, first) = poll_device(&client, &provider, device_code);
    assert_eq!(status, 400);
    assert_eq!(first["error"], "authorization_pending");
    let (status, second) = poll_device(&client, &provider, device_code);
    assert_eq!(status, 400);
    assert_eq!(second["error"], "slow_down");

    let drive = drive_device(verification_uri, user_code, &DriveOptions::default());
    assert_eq!(
        drive.outcome(),
        "approved",
        "driver result: {}",
        drive.result
    );

    // slow_down raised the interval to 1 + 5 s.
    std::thread::sleep(Duration::from_millis(6200));
    let (status, tokens) = poll_device(&client, &provider, device_code);
    assert_eq!(status, 200, "token response: {}", tokens["error"]);
    assert!(tokens["refresh_token"].is_string());
    let access_token = tokens["access_token"].as_str().expect("an access token");
    assert_eq!(jwt_claims(access_token)["aud"], AUDIENCE);
}

#[test]
fn device_flow_deny_and_wrong_code() {
    let provider = Provider::start(&ProviderOptions {
        device_interval_s: Some(1),
        ..Default::default()
    });
    let client = http_client(None);
    let device = start_device(&client, &provider);
    let device_code = device["device_code"].as_str().unwrap();
    let complete = device["verification_uri_complete"]
        .as_str()
        .expect("a complete URI");
    let verification_uri = device["verification_uri"].as_str().unwrap();

    let wrong = drive_device(verification_uri, "BCDF-GHJK", &DriveOptions::default());
    assert_eq!(wrong.outcome(), "failed", "driver result: {}", wrong.result);

    let options = DriveOptions {
        deny: true,
        ..Default::default()
    };
    // The complete URI carries the user code, so none is passed separately.
    let drive = drive_device(complete, "", &options);
    assert_eq!(drive.outcome(), "denied", "driver result: {}", drive.result);

    let (status, body) = poll_device(&client, &provider, device_code);
    assert_eq!(status, 400);
    assert_eq!(body["error"], "access_denied");
}

#[test]
fn device_code_expires() {
    let provider = Provider::start(&ProviderOptions {
        device_ttl_s: Some(1),
        device_interval_s: Some(1),
        ..Default::default()
    });
    let client = http_client(None);
    let device = start_device(&client, &provider);
    assert_eq!(device["expires_in"], 1);

    std::thread::sleep(Duration::from_millis(2200));
    let (status, body) = poll_device(&client, &provider, device["device_code"].as_str().unwrap());

    assert_eq!(status, 400);
    assert_eq!(body["error"], "expired_token");
}

#[test]
fn browser_script_drives_authorization() {
    let provider = Provider::start(&ProviderOptions::default());
    let directory = tempfile::tempdir().unwrap();
    let result_file = directory.path().join("browser.jsonl");
    let listener = RedirectListener::start();
    let pkce = Pkce::new();
    let url = authorization_url(
        &provider,
        &listener.redirect_uri(),
        Some(&pkce.challenge),
        "b1",
    );

    let status = std::process::Command::new(browser_script())
        .arg(&url)
        .env("OIDC_DRIVE_DENY", "1")
        .env("OIDC_DRIVE_RESULT", &result_file)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("failed to run tests/peers/oidc/browser.sh");

    assert!(status.success(), "browser.sh exited with {status}");
    let redirect = listener.wait(REDIRECT_WAIT).expect("the redirect arrived");
    assert_eq!(
        query_value(&redirect, "error").as_deref(),
        Some("access_denied")
    );
    let line = std::fs::read_to_string(&result_file).unwrap();
    let result: Value = serde_json::from_str(line.trim()).expect("one JSON result line");
    assert_eq!(result["outcome"], "error");
}

fn standin_for(provider: &Provider, extra: &[&str]) -> Standin {
    let mut arguments = vec![
        "--oidc-issuer",
        provider.issuer.as_str(),
        "--oidc-audience",
        AUDIENCE,
    ];
    arguments.extend_from_slice(extra);
    Standin::start(&arguments)
}

fn list_sources(
    client: &reqwest::blocking::Client,
    standin: &Standin,
    token: &str,
) -> (u16, Value, String) {
    let response = client
        .get(format!("{}/v1/sources", standin.origin))
        .bearer_auth(token)
        .send()
        .expect("the stand-in answers");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    (status, response.json().unwrap_or(Value::Null), challenge)
}

#[test]
fn standin_accepts_access_token() {
    let provider = Provider::start(&ProviderOptions::default());
    let client = http_client(None);
    let standin = standin_for(&provider, &[]);
    let tokens = sign_in(&client, &provider);
    let access_token = tokens["access_token"].as_str().unwrap();

    let (status, body, _) = list_sources(&client, &standin, access_token);
    assert_eq!(status, 200, "stand-in response: {body}");
    assert!(body["data"].is_array());

    let response = client
        .post(format!(
            "{}/v1/sources/src_cam1/publish-credentials",
            standin.origin
        ))
        .bearer_auth(access_token)
        .json(&serde_json::json!({"protocol": "srt"}))
        .send()
        .expect("the stand-in answers");
    assert_eq!(response.status().as_u16(), 201);

    // The ID token has the client as its audience, not the API.
    let id_token = tokens["id_token"].as_str().unwrap();
    let (status, body, challenge) = list_sources(&client, &standin, id_token);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        challenge.contains("invalid_token"),
        "WWW-Authenticate: {challenge}"
    );

    // A changed signature character must fail the check. The last character
    // is not changed, because its low bits are base64 padding.
    let position = access_token.len() - 10;
    let original = &access_token[position..position + 1];
    let replacement = if original == "A" { "B" } else { "A" };
    let mut tampered = access_token.to_string();
    tampered.replace_range(position..position + 1, replacement);
    let (status, body, _) = list_sources(&client, &standin, &tampered);
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("signature"),
        "message: {}",
        body["error"]["message"]
    );
}

#[test]
fn standin_rejects_expired_token() {
    let provider = Provider::start(&ProviderOptions {
        access_ttl_s: Some(1),
        ..Default::default()
    });
    let client = http_client(None);
    let standin = standin_for(&provider, &[]);
    let tokens = sign_in(&client, &provider);
    let access_token = tokens["access_token"].as_str().unwrap();
    let expiry = jwt_claims(access_token)["exp"].as_u64().unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while unix_now() <= expiry && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body, challenge) = list_sources(&client, &standin, access_token);

    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("expired"), "message: {message}");
    assert!(
        challenge.contains("invalid_token"),
        "WWW-Authenticate: {challenge}"
    );
}

#[test]
fn https_provider_with_test_ca() {
    let provider = Provider::start(&ProviderOptions {
        https: true,
        ..Default::default()
    });
    assert!(provider.issuer.starts_with("https://127.0.0.1:"));
    let ca_file = provider.ca.clone().expect("an HTTPS provider has a CA");
    let client = http_client(Some(&ca_file));
    let discovery = provider.discovery(&client);
    assert_eq!(discovery["issuer"], provider.issuer.as_str());

    let listener = RedirectListener::start();
    let pkce = Pkce::new();
    let options = DriveOptions {
        ca_file: Some(ca_file.clone()),
        ..Default::default()
    };
    let code = authorized_code(&provider, &listener, &pkce, "state-7", &options);
    let (status, tokens) = exchange_code(&client, &provider, &listener, &code, &pkce.verifier);
    assert_eq!(status, 200, "token response: {}", tokens["error"]);

    let ca = ca_file.display().to_string();
    let standin = standin_for(&provider, &["--oidc-ca-file", &ca]);
    let (status, body, _) =
        list_sources(&client, &standin, tokens["access_token"].as_str().unwrap());
    assert_eq!(status, 200, "stand-in response: {body}");

    // Without the test CA the driver must not trust the provider.
    let untrusted = drive_authorize(
        &authorization_url(
            &provider,
            &listener.redirect_uri(),
            Some(&pkce.challenge),
            "s",
        ),
        &DriveOptions::default(),
    );
    assert_eq!(
        untrusted.outcome(),
        "failed",
        "driver result: {}",
        untrusted.result
    );
}
