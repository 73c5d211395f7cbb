//! The VNC console: relay a browser's WebSocket to a VM's VNC unix socket,
//! and serve the noVNC page that speaks to it.
