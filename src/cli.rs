//! The command line as parsed, before validation. `config::build` turns it
//! into a checked `Config`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "bridge",
    version,
    about = "Capture a camera or capture card, encode it once and publish it to TRaX",
    after_help = "Credentials are never taken from a flag's value. Give them through \
                  TRAX_SESSION_TOKEN or --token-file, TRAX_STREAM_KEY or --stream-key-file, \
                  TRAX_SRT_PASSPHRASE or --passphrase-file, TRAX_API_KEY or --api-key-file, \
                  or as systemd credentials (trax-session-token, trax-stream-key, \
                  trax-srt-passphrase, trax-api-key)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the capture devices, their modes and the sound card of each.
    Devices(DevicesArgs),
    /// List the H.264 encoders this machine offers and which pass a test encode.
    Encoders(EncodersArgs),
    /// Check a config file without starting anything: print "ok" and a
    /// summary per device and output (exit 0), or every error (exit 2).
    Check(CheckArgs),
    /// List the studios the API key can see.
    Studios(ListArgs),
    /// List the sources the API key can see.
    Sources(SourcesArgs),
    /// Log in to TRaX as a user (OAuth 2.0 with PKCE in the system browser,
    /// or --device-code), and store the tokens for the API calls of later
    /// runs that have no API key.
    Login(LoginArgs),
    /// Revoke and delete the stored login, and end the session at the
    /// identity provider where it offers that.
    Logout(OAuthArgs),
    /// Check the TRaX API.
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Read the API's openapi.json and report whether every operation the
    /// bridge relies on is there (exit 0) or which are missing (exit 1).
    Check(ApiArgs),
}

/// Where the TRaX /v1 API is and how to authenticate to it.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The API's origin, without /v1 (which the bridge appends).
    #[arg(
        long,
        value_name = "ORIGIN",
        env = "TRAX_API_URL",
        default_value = "https://api-dev.traxstreaming.live"
    )]
    pub api_url: String,

    /// File that contains the API key or a user's OAuth access token.
    /// Default: TRAX_API_KEY, then the systemd credential trax-api-key.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Extra CA certificate (PEM) to trust for the API, for private deployments.
    #[arg(long, value_name = "FILE")]
    pub api_ca_file: Option<PathBuf>,

    /// Timeout of each API request, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub api_timeout: f64,

    /// Directory of the stored login (the token file of `bridge login
    /// --state-dir`). Default: $STATE_DIRECTORY under systemd, else the
    /// system keystore or $XDG_STATE_HOME/bridge (~/.local/state/bridge).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Where a config file says the API key comes from; the command line
    /// uses --api-key-file and the default sources.
    #[arg(skip)]
    pub api_key_source: Option<crate::config::credentials::NamedSource>,
}

/// The identity provider, the registered app and where its tokens go.
#[derive(Debug, Args, Clone)]
pub struct OAuthArgs {
    /// The identity provider's issuer URL (https://, or http:// on a
    /// loopback host). Default: https://auth-dev.traxstreaming.live.
    #[arg(long, value_name = "URL", env = "TRAX_OAUTH_ISSUER")]
    pub oauth_issuer: Option<String>,

    /// The client id TRaX registered for this app (not a secret).
    #[arg(long, value_name = "ID", env = "TRAX_OAUTH_CLIENT_ID")]
    pub oauth_client_id: Option<String>,

    /// Extra CA certificate (PEM) to trust for the identity provider.
    #[arg(long, value_name = "FILE")]
    pub oauth_ca_file: Option<PathBuf>,

    /// Keep the tokens in DIR/oauth-login.json (owner-only), as for a
    /// service's state directory such as /var/lib/bridge. Default:
    /// $STATE_DIRECTORY, else the system keystore, else
    /// $XDG_STATE_HOME/bridge (~/.local/state/bridge).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Read oauth_issuer, oauth_client_id, oauth_ca_file and state_dir
    /// from this config file's top level; flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub oauth: OAuthArgs,

    /// Log in on another device: print a URL and a code to enter there
    /// (RFC 8628 device authorization grant), for machines without a browser.
    #[arg(long)]
    pub device_code: bool,

    /// Print who is logged in and until when, without logging in.
    #[arg(long, conflicts_with = "device_code")]
    pub status: bool,

    /// Print the login URL instead of opening a browser.
    #[arg(long, conflicts_with_all = ["device_code", "status"])]
    pub no_browser: bool,

    /// Seconds to wait for the browser's redirect. A device-code login
    /// waits until the device code expires instead.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 300,
        conflicts_with = "device_code"
    )]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file to check.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Check the settings for this device only (default: the file's
    /// top-level settings and each [device."KEY"] table).
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SourcesArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Only the sources of this studio.
    #[arg(long, value_name = "ID")]
    pub studio: Option<String>,
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EncodersArgs {
    /// Size of the test encode, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    pub size: String,
    /// Frame rate of the test encode.
    #[arg(long, default_value = "30")]
    pub fps: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Read every setting from this TOML file (see examples/bridge.toml).
    /// Only --device, --duration and --log-level may be given with it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Source: /dev/videoN, test, file:PATH, decklink:N, avf:N or libcamera[:ID].
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// Play a file: source again and again, with timestamps that keep increasing.
    #[arg(long = "loop")]
    pub looped: bool,

    /// Destination, repeatable: srt://host:port, rtmp://host:port/path,
    /// rtmps://host:port/path or a WHIP endpoint https://host:port/path/whip.
    /// With --source it may be left out.
    #[arg(long = "output", value_name = "URL")]
    pub outputs: Vec<String>,

    /// The provisioned stream path (such as inputs/srt-<uuid>) for outputs whose URL carries none.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,

    /// Acquire each output's path and session token for this TRaX source
    /// through the /v1 API (needs an API key). Without --output, the ingest
    /// URLs the API returns are used.
    #[arg(long, value_name = "ID")]
    pub source: Option<String>,

    #[command(flatten)]
    pub api: ApiArgs,

    /// File that contains the session token (JWT). Default: TRAX_SESSION_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// File that contains the stream key. Default: TRAX_STREAM_KEY.
    #[arg(long, value_name = "FILE")]
    pub stream_key_file: Option<PathBuf>,

    /// File that contains the SRT passphrase (10 to 79 characters). Default: TRAX_SRT_PASSPHRASE.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// SRT encryption key length in bytes when a passphrase is set: 16, 24 or 32
    /// (0 lets the listener choose).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub pbkeylen: u32,

    /// Encoder: auto, vaapi, qsv, nvenc, v4l2, videotoolbox, x264 or openh264.
    #[arg(long, default_value = "auto")]
    pub encoder: String,

    /// Encoded picture size, WIDTHxHEIGHT. Default: the source's, at most 1920x1080.
    #[arg(long, value_name = "WxH", allow_hyphen_values = true)]
    pub size: Option<String>,

    /// Frame rate: 30, 30000/1001 or 29.97. Default: the source's.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub fps: Option<String>,

    /// Video bitrate in kb/s. Default: 6000 at 1920x1080, scaled by pixel count.
    #[arg(long, value_name = "KBPS", allow_negative_numbers = true)]
    pub bitrate: Option<u32>,

    /// Keyframe interval in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 2.0,
        allow_negative_numbers = true
    )]
    pub gop: f64,

    /// H.264 profile: constrained-baseline, baseline, main or high.
    /// Default: high, or constrained-baseline when a WHIP output is present.
    #[arg(long)]
    pub profile: Option<String>,

    /// Audio: auto (the source's own), none, or an ALSA device such as hw:1.
    #[arg(long, default_value = "auto")]
    pub audio: String,

    /// AAC bitrate in kb/s.
    #[arg(
        long,
        value_name = "KBPS",
        default_value_t = 128,
        allow_negative_numbers = true
    )]
    pub audio_bitrate: u32,

    /// Opus bitrate in kb/s, for WHIP outputs.
    #[arg(
        long,
        value_name = "KBPS",
        default_value_t = 96,
        allow_negative_numbers = true
    )]
    pub opus_bitrate: u32,

    /// Shift audio against video, in milliseconds (positive: audio later).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub av_offset_ms: i64,

    /// Where RTMP outputs place the token: tcurl (the connect command's
    /// tcUrl, as TRaX documents), query (the publish name's ?user=&pass=,
    /// which stock MediaMTX reads) or both.
    #[arg(long, value_name = "PLACE", default_value = "tcurl")]
    pub rtmp_credentials: String,

    /// Extra CA certificate (PEM) to trust for RTMPS and https WHIP
    /// outputs, for private deployments.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// STUN or TURN server for WHIP outputs, repeatable: stun:host:port,
    /// turn:host:port?transport=udp or turns:host:port. Used with the ones
    /// the WHIP server names.
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_servers: Vec<String>,

    /// Local address to gather WHIP ICE host candidates on, repeatable
    /// (default: every interface but loopback). Picks the network on a box
    /// with several, such as wired over Wi-Fi.
    #[arg(long = "ice-address", value_name = "IP")]
    pub ice_addresses: Vec<String>,

    /// User name for the --ice-server TURN servers. Their password comes
    /// from TRAX_TURN_CREDENTIAL or --turn-credential-file.
    #[arg(long, value_name = "NAME")]
    pub turn_username: Option<String>,

    /// File that contains the TURN password. Default: TRAX_TURN_CREDENTIAL.
    #[arg(long, value_name = "FILE")]
    pub turn_credential_file: Option<PathBuf>,

    /// Send the session token along when a WHIP server redirects to another
    /// host, scheme or port (otherwise such a redirect fails).
    #[arg(long)]
    pub whip_cross_origin: bool,

    /// SRT latency in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 300,
        allow_negative_numbers = true
    )]
    pub latency: u32,

    /// Record the encoded stream into this directory as MPEG-TS segments,
    /// next to the outputs or on its own. The directory must exist.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,

    /// Length of a recorded segment in seconds: a new one starts at the
    /// first keyframe at or after it.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = crate::output::record::DEFAULT_SEGMENT_SECONDS,
        allow_negative_numbers = true
    )]
    pub record_segment: f64,

    /// Delete the oldest recorded segments while they take more than SIZE
    /// together: a number with K, M, G or T (powers of 1024), such as 20G.
    #[arg(long, value_name = "SIZE")]
    pub record_max_size: Option<String>,

    /// Delete recorded segments last written longer ago than DURATION, such
    /// as 24h, 90m, 30s or 7d.
    #[arg(long, value_name = "DURATION")]
    pub record_max_age: Option<String>,

    /// First delay in seconds before an output reconnects. Each failure in
    /// a row doubles it, up to --reconnect-max-delay.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0.5,
        allow_negative_numbers = true
    )]
    pub reconnect_initial_delay: f64,

    /// Maximum delay in seconds between two reconnect attempts of an
    /// output. The delay starts at --reconnect-initial-delay and doubles up
    /// to this value.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub reconnect_max_delay: f64,

    /// Plan the capture, select the encoder (with its test encode), print
    /// the media pipeline this run would build and exit 0, without
    /// starting it or connecting to any output.
    #[arg(long)]
    pub print_pipeline: bool,

    /// Stop cleanly after this many seconds and exit 0 (0: run until a signal).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub duration: f64,

    /// Seconds between status log lines, one per output, when standard
    /// error is not a terminal (a terminal shows the status live): 0.1 to
    /// 86400, or 0 to turn the status off in both places.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub status_interval: f64,

    /// Serve the status page, status JSON and Prometheus metrics on this
    /// address, such as 127.0.0.1:8181 (0.0.0.0:8181 opens it to the
    /// local network). Default: no status server.
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub status_listen: Option<String>,

    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides it).
    #[arg(long, default_value = "info")]
    pub log_level: String,

    /// Rejected: secrets are not taken from flags.
    #[arg(long, hide = true, value_name = "SECRET")]
    pub token: Option<String>,

    /// Rejected: secrets are not taken from flags.
    #[arg(long, hide = true, value_name = "SECRET")]
    pub stream_key: Option<String>,

    /// Rejected: secrets are not taken from flags.
    #[arg(long, hide = true, value_name = "SECRET")]
    pub passphrase: Option<String>,

    /// Rejected: secrets are not taken from flags.
    #[arg(long, hide = true, value_name = "SECRET")]
    pub api_key: Option<String>,
}
