/*
 * Sharelock pages' messages: the catalogue the server embeds in the page's root element
 * (`data-messages`, in the person's language) and the one lookup the page scripts use, so that
 * the consent, rights and account pages read it alike. No inline code; `script-src 'self'`.
 */
"use strict";

/** `{t, has}` for the catalogue in `root.dataset.messages` (an empty one if it is not JSON). */
function SharelockMessages(root) {
  const own = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
  let messages = {};
  try {
    messages = JSON.parse(root.dataset.messages || "{}");
  } catch (_) {
    messages = {};
  }
  return Object.freeze({
    /** Whether the catalogue has `key`. */
    has: (key) => own(messages, key),
    /** The message `key`, with `{name}` replaced by `params.name`; the key itself if unknown. */
    t(key, params) {
      const text = own(messages, key) ? messages[key] : key;
      return text.replace(/\{([a-z_]+)\}/g, (whole, name) =>
        params && own(params, name) ? String(params[name]) : whole,
      );
    },
  });
}
