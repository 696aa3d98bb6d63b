//! `bridge login` and `bridge logout`: a user's login to TRaX, stored for
//! the /v1 calls of later runs that have no API key.

use crate::cli::{LoginArgs, OAuthArgs};
use crate::exit::{ExitStatus, Fatal};
use crate::trax::oauth::{
    self, check_client_id, check_issuer, DevicePrompt, OAuthError, OAuthSettings, Provider,
    StoredLogin, TokenStore, DEFAULT_ISSUER,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::info;

/// Logs the user in with the browser or a device code and stores the
/// tokens. With `--status`, prints who is logged in.
pub fn login(args: &LoginArgs) -> Result<(), Fatal> {
    let env = |name: &str| std::env::var(name).ok();
    let settings = settings(&args.oauth)?;
    let store = TokenStore::locate(settings.state_dir.as_deref(), &env);
    if args.status {
        return status(&store);
    }
    if args.timeout == 0 {
        return Err(Fatal::new(
            ExitStatus::Usage,
            anyhow::anyhow!(
                "invalid --timeout 0: give the seconds to wait for the browser, such as 300"
            ),
        ));
    }
    let client_id = settings.require_client_id().map_err(fatal)?.to_string();
    store.check_writable().map_err(fatal)?;
    let provider = Provider::discover(&settings).map_err(fatal)?;

    let mut login = if args.device_code {
        let (details, prompt) = oauth::start_device_login(&provider, &client_id).map_err(fatal)?;
        show_device_prompt(&prompt);
        oauth::finish_device_login(&provider, &client_id, &details).map_err(fatal)?
    } else {
        let open = |url: &str| open_browser(url, args.no_browser);
        let timeout = Duration::from_secs(args.timeout);
        oauth::browser_login(&provider, &client_id, &open, timeout).map_err(fatal)?
    };
    login.ca_file = settings.ca_file.clone();
    let place = store.save(&login).map_err(fatal)?;
    info!(user = %login.who(), stored_in = %place, "logged in");
    crate::commands::write_stdout(&format!(
        "logged in as {} at {}\n{}\ntokens stored in {place}\n",
        login.who(),
        login.issuer,
        validity(&login)
    ))
}

/// Revokes the stored refresh token, deletes the stored login and prints
/// how to end the browser session at the identity provider.
pub fn logout(args: &OAuthArgs) -> Result<(), Fatal> {
    let env = |name: &str| std::env::var(name).ok();
    let settings = settings(args)?;
    let store = TokenStore::locate(settings.state_dir.as_deref(), &env);
    let login = match store.load() {
        Ok(Some(login)) => login,
        Ok(None) => return crate::commands::write_stdout("not logged in; nothing to do\n"),
        Err(error @ OAuthError::TokenFile { .. }) => {
            // An unreadable file is still deleted, so the user can start over.
            store.delete().map_err(fatal)?;
            return crate::commands::write_stdout(&format!(
                "deleted the stored login, which could not be read ({error})\n"
            ));
        }
        Err(error) => return Err(fatal(error)),
    };

    let mut lines = Vec::new();
    let revoked = revoke(&login);
    store.delete().map_err(fatal)?;
    lines.push(format!("deleted the stored login of {}", login.who()));
    match &revoked {
        Ok(true) => lines.push("revoked the refresh token at the identity provider".into()),
        Ok(false) => lines.push(
            "the identity provider offers no token revocation: the tokens stay valid until \
             they expire"
                .into(),
        ),
        // The failure is reported once, as the error below.
        Err(_) => {}
    }
    match end_session_url(&login) {
        Some(url) => lines.push(format!(
            "to end the browser session at the identity provider too, open {url}"
        )),
        None => lines.push(
            "the identity provider offers no end-session endpoint: sign out in the browser to \
             end its session there"
                .into(),
        ),
    }
    let outcome = crate::commands::write_stdout(&(lines.join("\n") + "\n"));
    match revoked {
        Err(error) => Err(Fatal::new(
            ExitStatus::Other,
            anyhow::anyhow!(
                "the stored login was deleted, but its tokens could not be revoked ({error}); \
                 they stay valid until they expire"
            ),
        )),
        Ok(_) => outcome,
    }
}

/// Prints who is logged in and until when, never a token.
fn status(store: &TokenStore) -> Result<(), Fatal> {
    let (login, place) = store
        .load_with_place()
        .map_err(fatal)?
        .ok_or_else(|| fatal(OAuthError::NotLoggedIn))?;
    crate::commands::write_stdout(&format!(
        "logged in as {} at {} (client {})\n{}\ntokens stored in {place}\n",
        login.who(),
        login.issuer,
        login.client_id,
        validity(&login),
    ))
}

fn validity(login: &StoredLogin) -> String {
    let refresh = if login.refresh_token.is_some() {
        "refreshed automatically with the refresh token"
    } else {
        "no refresh token: run `bridge login` again after that"
    };
    match login.expires_at {
        Some(at) => {
            let time = std::time::UNIX_EPOCH + Duration::from_secs(at);
            let remaining = at.saturating_sub(oauth::unix_now());
            format!(
                "access token valid until {} (for {} s more); {refresh}",
                httpdate::fmt_http_date(time),
                remaining
            )
        }
        None => format!("access token without a stated expiry; {refresh}"),
    }
}

fn revoke(login: &StoredLogin) -> Result<bool, OAuthError> {
    let Some(endpoint) = &login.revocation_endpoint else {
        return Ok(false);
    };
    let loopback = url::Url::parse(endpoint).is_ok_and(|url| oauth_is_loopback(&url));
    let http = oauth::http_client(login.ca_file.as_deref(), loopback)?;
    oauth::revoke(&http, login)
}

fn oauth_is_loopback(url: &url::Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// Returns the end-session URL with the client id, for the user to open. The ID
/// token is not added as a hint, because the URL is printed.
fn end_session_url(login: &StoredLogin) -> Option<String> {
    let mut url = url::Url::parse(login.end_session_endpoint.as_deref()?).ok()?;
    url.query_pairs_mut()
        .append_pair("client_id", &login.client_id);
    Some(url.to_string())
}

fn show_device_prompt(prompt: &DevicePrompt) {
    eprintln!(
        "To log in, open {} on any device and enter the code {}",
        prompt.verification_uri, prompt.user_code
    );
    if let Some(complete) = &prompt.verification_uri_complete {
        eprintln!("or open {complete}, which carries the code");
    }
    eprintln!(
        "The code expires in {} s. Waiting for the login to be approved (checking every {} s)…",
        prompt.expires_in.as_secs(),
        prompt.interval.as_secs()
    );
}

/// Prints the login URL and opens it with the system browser ($BROWSER
/// first), unless `print_only`.
fn open_browser(url: &str, print_only: bool) {
    eprintln!("Log in to TRaX in the browser at:\n  {url}");
    if print_only {
        return;
    }
    if let Err(error) = webbrowser::open(url) {
        eprintln!("No browser could be opened ({error}); open the URL above yourself.");
    }
    eprintln!("Waiting for the browser to come back to bridge…");
}

/// Merges the flags (and their variables) over the config file's keys and
/// the defaults.
fn settings(args: &OAuthArgs) -> Result<OAuthSettings, Fatal> {
    let file = match &args.config {
        Some(path) => crate::config::file::oauth_keys(path)
            .map_err(|error| Fatal::new(ExitStatus::Usage, error))?,
        None => Default::default(),
    };
    let issuer = args
        .oauth_issuer
        .clone()
        .or(file.oauth_issuer)
        .unwrap_or_else(|| DEFAULT_ISSUER.to_string());
    let client_id = args
        .oauth_client_id
        .clone()
        .or(file.oauth_client_id)
        .map(|id| check_client_id(&id))
        .transpose()
        .map_err(fatal)?;
    let ca_file = args.oauth_ca_file.clone().or(file.oauth_ca_file);
    Ok(OAuthSettings {
        issuer: check_issuer(&issuer).map_err(fatal)?,
        client_id,
        ca_file: ca_file.map(|path| absolute(&path)),
        state_dir: args.state_dir.clone().or(file.state_dir),
    })
}

/// Makes a CA file's path absolute, since later runs read it from their
/// own working directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn fatal(error: OAuthError) -> Fatal {
    Fatal::new(error.exit_status(), error)
}
