//! Hand-written bindings to the part of libsrt 1.5's C API (`srt/srt.h`)
//! that the SRT output uses. Values are copied from the 1.5.1 header.

// Type names follow the C header.
#![allow(non_camel_case_types, clippy::upper_case_acronyms)]

use libc::{c_char, c_int, c_void, sockaddr};

pub type SRTSOCKET = i32;

pub const SRT_INVALID_SOCK: SRTSOCKET = -1;
pub const SRT_ERROR: c_int = -1;

// `SRT_SOCKOPT` values.
pub const SRTO_SNDSYN: c_int = 1;
pub const SRTO_RCVSYN: c_int = 2;
pub const SRTO_SNDTIMEO: c_int = 13;
pub const SRTO_LATENCY: c_int = 23;
pub const SRTO_PASSPHRASE: c_int = 26;
pub const SRTO_PBKEYLEN: c_int = 27;
pub const SRTO_CONNTIMEO: c_int = 36;
pub const SRTO_STREAMID: c_int = 46;
pub const SRTO_PAYLOADSIZE: c_int = 49;
pub const SRTO_TRANSTYPE: c_int = 50;

// `SRT_TRANSTYPE` values.
pub const SRTT_LIVE: c_int = 0;

// `SRT_SOCKSTATUS` values.
pub const SRTS_CONNECTED: c_int = 5;

// `SRT_ERRNO` values the output distinguishes.
pub const SRT_ENOSERVER: c_int = 1001;
pub const SRT_ECONNREJ: c_int = 1002;

// `SRT_REJECT_REASON` values that mean no listener responded.
pub const SRT_REJ_UNKNOWN: c_int = 0;
pub const SRT_REJ_SYSTEM: c_int = 1;
pub const SRT_REJ_TIMEOUT: c_int = 16;

// syslog levels, which `srt_setloglevel` takes.
pub const LOG_ERR: c_int = 3;
pub const LOG_WARNING: c_int = 4;
pub const LOG_NOTICE: c_int = 5;

/// `SRT_LOG_HANDLER_FN` from `srt/logging_api.h`.
pub type SRT_LOG_HANDLER_FN = unsafe extern "C" fn(
    opaque: *mut c_void,
    level: c_int,
    file: *const c_char,
    line: c_int,
    area: *const c_char,
    message: *const c_char,
);

// Linked by build.rs through pkg-config.
extern "C" {
    pub fn srt_startup() -> c_int;
    pub fn srt_create_socket() -> SRTSOCKET;
    pub fn srt_setsockflag(
        socket: SRTSOCKET,
        option: c_int,
        value: *const c_void,
        length: c_int,
    ) -> c_int;
    pub fn srt_connect(socket: SRTSOCKET, name: *const sockaddr, length: c_int) -> c_int;
    /// A null `mctrl` selects the default message control.
    pub fn srt_sendmsg2(
        socket: SRTSOCKET,
        buffer: *const c_char,
        length: c_int,
        mctrl: *mut c_void,
    ) -> c_int;
    pub fn srt_getsndbuffer(socket: SRTSOCKET, blocks: *mut usize, bytes: *mut usize) -> c_int;
    pub fn srt_getsockstate(socket: SRTSOCKET) -> c_int;
    pub fn srt_getrejectreason(socket: SRTSOCKET) -> c_int;
    pub fn srt_rejectreason_str(reason: c_int) -> *const c_char;
    pub fn srt_getlasterror_str() -> *const c_char;
    pub fn srt_getlasterror(errno_loc: *mut c_int) -> c_int;
    pub fn srt_close(socket: SRTSOCKET) -> c_int;
    pub fn srt_setloglevel(level: c_int);
    pub fn srt_setloghandler(opaque: *mut c_void, handler: Option<SRT_LOG_HANDLER_FN>);
}
