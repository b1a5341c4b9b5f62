//! stub: to be written
