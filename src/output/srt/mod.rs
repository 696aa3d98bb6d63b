//! SRT output: MPEG-TS over libsrt in caller mode.
