//! build-listener: turns Jenkins build notifications into Gerrit reviews.
