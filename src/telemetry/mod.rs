//! Logging and, later, status reporting.
