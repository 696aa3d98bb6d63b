pub mod link;
pub mod signaling;
