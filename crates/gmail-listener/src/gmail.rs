//! Gmail API access (to be written).
