// nsauth passkeys: the browser's side of a WebAuthn ceremony. The page
// holds a form (#passkey-form) with the auth request, the CSRF token and
// the mode; this script asks nsauth for the options, lets the browser
// talk to the authenticator, and posts the answer with the form, so that
// nsauth answers with the next page. Served from nsauth's own origin
// under the pages' CSP: no inline code, no other origin.
(function () {
  "use strict";
  var form = document.getElementById("passkey-form");
  if (!form) {
    return;
  }
  if (!window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
    return; // the passkey part stays hidden; the password still works
  }
  var unsupported = document.getElementById("passkey-unsupported");
  if (unsupported) {
    unsupported.hidden = true;
  }
  document.getElementById("passkey").hidden = false;
  var button = document.getElementById("passkey-button");
  var status = document.getElementById("passkey-status");
  var mode = form.elements.mode.value;
  // Where the ceremony begins: the login's endpoint unless the form names
  // another (the account page's, data-begin).
  var beginPath = form.getAttribute("data-begin") || "/login/passkey/begin";

  function toBuffer(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function fromBuffer(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return { type: d.type, id: toBuffer(d.id), transports: d.transports };
    });
  }

  function begin() {
    return fetch(beginPath, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.elements.csrf.value },
      body: JSON.stringify({
        authRequestID: form.elements.authRequestID ? form.elements.authRequestID.value : "",
        mode: mode,
        token: form.elements.token ? form.elements.token.value : undefined
      })
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok) {
          throw new Error(body.error || "The server refused the request.");
        }
        return body;
      });
    });
  }

  function create(options) {
    var pk = options.publicKey;
    pk.challenge = toBuffer(pk.challenge);
    pk.user.id = toBuffer(pk.user.id);
    pk.excludeCredentials = descriptors(pk.excludeCredentials);
    return navigator.credentials.create({ publicKey: pk }).then(function (cred) {
      var r = cred.response;
      return {
        id: cred.id,
        rawId: fromBuffer(cred.rawId),
        type: cred.type,
        authenticatorAttachment: cred.authenticatorAttachment || undefined,
        clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
        response: {
          clientDataJSON: fromBuffer(r.clientDataJSON),
          attestationObject: fromBuffer(r.attestationObject),
          transports: r.getTransports ? r.getTransports() : []
        }
      };
    });
  }

  function get(options) {
    var pk = options.publicKey;
    pk.challenge = toBuffer(pk.challenge);
    pk.allowCredentials = descriptors(pk.allowCredentials);
    return navigator.credentials.get({ publicKey: pk }).then(function (cred) {
      var r = cred.response;
      return {
        id: cred.id,
        rawId: fromBuffer(cred.rawId),
        type: cred.type,
        authenticatorAttachment: cred.authenticatorAttachment || undefined,
        clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
        response: {
          clientDataJSON: fromBuffer(r.clientDataJSON),
          authenticatorData: fromBuffer(r.authenticatorData),
          signature: fromBuffer(r.signature),
          userHandle: r.userHandle ? fromBuffer(r.userHandle) : undefined
        }
      };
    });
  }

  button.addEventListener("click", function () {
    if (!form.reportValidity()) {
      return;
    }
    button.disabled = true;
    status.textContent = "Waiting for your passkey…";
    begin()
      .then(function (options) {
        return mode === "register" || mode === "enroll" ? create(options) : get(options);
      })
      .then(function (answer) {
        form.elements.credential.value = JSON.stringify(answer);
        status.textContent = "Checking…";
        form.submit();
      })
      .catch(function (err) {
        button.disabled = false;
        if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) {
          status.textContent = "Cancelled. You can try again.";
        } else if (err && err.name === "InvalidStateError") {
          status.textContent = "This authenticator already holds a passkey for your account.";
        } else {
          status.textContent = (err && err.message) || "Something went wrong. Try again.";
        }
      });
  });
})();
