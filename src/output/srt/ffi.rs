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

/// `SRT_TRACEBSTATS` (`struct CBytePerfMon`): the connection's counters,
/// field for field as in the 1.5.1 header. `srt_bstats` fills all of them;
/// the bridge reads the RTT, loss and retransmission counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_snake_case)]
pub struct SRT_TRACEBSTATS {
    pub msTimeStamp: i64,
    pub pktSentTotal: i64,
    pub pktRecvTotal: i64,
    pub pktSndLossTotal: c_int,
    pub pktRcvLossTotal: c_int,
    pub pktRetransTotal: c_int,
    pub pktSentACKTotal: c_int,
    pub pktRecvACKTotal: c_int,
    pub pktSentNAKTotal: c_int,
    pub pktRecvNAKTotal: c_int,
    pub usSndDurationTotal: i64,
    pub pktSndDropTotal: c_int,
    pub pktRcvDropTotal: c_int,
    pub pktRcvUndecryptTotal: c_int,
    pub byteSentTotal: u64,
    pub byteRecvTotal: u64,
    pub byteRcvLossTotal: u64,
    pub byteRetransTotal: u64,
    pub byteSndDropTotal: u64,
    pub byteRcvDropTotal: u64,
    pub byteRcvUndecryptTotal: u64,
    pub pktSent: i64,
    pub pktRecv: i64,
    pub pktSndLoss: c_int,
    pub pktRcvLoss: c_int,
    pub pktRetrans: c_int,
    pub pktRcvRetrans: c_int,
    pub pktSentACK: c_int,
    pub pktRecvACK: c_int,
    pub pktSentNAK: c_int,
    pub pktRecvNAK: c_int,
    pub mbpsSendRate: f64,
    pub mbpsRecvRate: f64,
    pub usSndDuration: i64,
    pub pktReorderDistance: c_int,
    pub pktRcvAvgBelatedTime: f64,
    pub pktRcvBelated: i64,
    pub pktSndDrop: c_int,
    pub pktRcvDrop: c_int,
    pub pktRcvUndecrypt: c_int,
    pub byteSent: u64,
    pub byteRecv: u64,
    pub byteRcvLoss: u64,
    pub byteRetrans: u64,
    pub byteSndDrop: u64,
    pub byteRcvDrop: u64,
    pub byteRcvUndecrypt: u64,
    pub usPktSndPeriod: f64,
    pub pktFlowWindow: c_int,
    pub pktCongestionWindow: c_int,
    pub pktFlightSize: c_int,
    pub msRTT: f64,
    pub mbpsBandwidth: f64,
    pub byteAvailSndBuf: c_int,
    pub byteAvailRcvBuf: c_int,
    pub mbpsMaxBW: f64,
    pub byteMSS: c_int,
    pub pktSndBuf: c_int,
    pub byteSndBuf: c_int,
    pub msSndBuf: c_int,
    pub msSndTsbPdDelay: c_int,
    pub pktRcvBuf: c_int,
    pub byteRcvBuf: c_int,
    pub msRcvBuf: c_int,
    pub msRcvTsbPdDelay: c_int,
    pub pktSndFilterExtraTotal: c_int,
    pub pktRcvFilterExtraTotal: c_int,
    pub pktRcvFilterSupplyTotal: c_int,
    pub pktRcvFilterLossTotal: c_int,
    pub pktSndFilterExtra: c_int,
    pub pktRcvFilterExtra: c_int,
    pub pktRcvFilterSupply: c_int,
    pub pktRcvFilterLoss: c_int,
    pub pktReorderTolerance: c_int,
    pub pktSentUniqueTotal: i64,
    pub pktRecvUniqueTotal: i64,
    pub byteSentUniqueTotal: u64,
    pub byteRecvUniqueTotal: u64,
    pub pktSentUnique: i64,
    pub pktRecvUnique: i64,
    pub byteSentUnique: u64,
    pub byteRecvUnique: u64,
}

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
    /// `clear` non-zero resets the interval counters after reading.
    pub fn srt_bstats(socket: SRTSOCKET, stats: *mut SRT_TRACEBSTATS, clear: c_int) -> c_int;
    pub fn srt_getrejectreason(socket: SRTSOCKET) -> c_int;
    pub fn srt_rejectreason_str(reason: c_int) -> *const c_char;
    pub fn srt_getlasterror_str() -> *const c_char;
    pub fn srt_getlasterror(errno_loc: *mut c_int) -> c_int;
    pub fn srt_close(socket: SRTSOCKET) -> c_int;
    pub fn srt_setloglevel(level: c_int);
    pub fn srt_setloghandler(opaque: *mut c_void, handler: Option<SRT_LOG_HANDLER_FN>);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Sizes and offsets printed by a C program built against the 1.5.1
    /// header on x86_64 (`sizeof`, `offsetof`).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn bstats_layout_matches_header() {
        assert_eq!(size_of::<SRT_TRACEBSTATS>(), 496);
        assert_eq!(offset_of!(SRT_TRACEBSTATS, pktSndLossTotal), 24);
        assert_eq!(offset_of!(SRT_TRACEBSTATS, pktRetransTotal), 32);
        assert_eq!(offset_of!(SRT_TRACEBSTATS, msRTT), 328);
        assert_eq!(offset_of!(SRT_TRACEBSTATS, byteRecvUnique), 488);
    }
}
