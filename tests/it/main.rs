mod hostile;
mod interop;
mod registry;
mod support;
