/** TLS alert numbers (RFC 8446 §6) and the code OpenSSL gives them when they surface with a code. */
const ALERTS: Record<string, string> = {
  '40': 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  '42': 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  '43': 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
  '44': 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  '45': 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  '46': 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  '48': 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  '49': 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
  '51': 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  '70': 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
  '71': 'ERR_SSL_TLSV1_ALERT_INSUFFICIENT_SECURITY',
  '116': 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
};

/**
 * The code to classify by. An alert received while writing surfaces as `EPROTO` with the alert
 * only in the message ("SSL alert number 48"); name it like OpenSSL does when it has a code.
 */
export function effectiveCode(code: string, message: string): string {
  if (code !== 'EPROTO') return code;
  const alert = /SSL alert number (\d+)/.exec(message)?.[1];
  if (alert && ALERTS[alert]) return ALERTS[alert];
  // A local TLS error surfacing as `write EPROTO` ("…:SSL routines:fn:wrong version number:…"): name it as Node does.
  const reason = /error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):/.exec(message)?.[1];
  return reason ? `ERR_SSL_${reason.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}` : code;
}

/** OpenSSL's "8000...:error:0A000418:SSL routines:fn:tlsv1 alert unknown ca:file:line:SSL alert number 48" → its reason. */
export function readableMessage(message: string): string {
  const reason = /error:[0-9A-F]+:[^:]+:[^:]+:([^:]+):/.exec(message)?.[1];
  const alert = /SSL alert number (\d+)/.exec(message)?.[1];
  // libuv's connect errors end in " - Local (undefined:undefined)" when no socket was ever bound (EMFILE).
  return reason ? `${reason}${alert ? ` (TLS alert ${alert})` : ''}` : message.replace(/ - Local \(undefined:undefined\)$/, '');
}
