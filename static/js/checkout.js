// The payment step, with Stripe.js in the page:
//  - "payment": a one-off gift, confirmed with confirmPayment (Payment Element)
//  - "setup": a monthly/annual plan's payment method, saved with confirmSetup;
//    the server then creates the subscription when the thank-you page loads
//  - "authenticate": the plan's first payment needs 3D Secure (handleNextAction)
// https://docs.stripe.com/payments/accept-a-payment?platform=web&ui=elements
(function () {
  "use strict";
  var form = document.getElementById("payment-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var data = form.dataset;
  var button = document.getElementById("pay-button");
  var message = document.getElementById("payment-message");
  var status = document.getElementById("payment-status");
  var idleLabel = button.textContent;
  var busy = false;

  // Decline reasons that must never be shown: telling a fraudster that a
  // card is reported stolen helps them, so these read as a plain decline.
  var SHOWN_CODES = ["insufficient_funds", "expired_card", "incorrect_cvc",
    "incorrect_number", "processing_error"];

  function messageFor(error) {
    var reason = error.decline_code || error.code || "";
    if (error.type === "validation_error") { return error.message || data.msgIncomplete; }
    if (error.code === "payment_intent_authentication_failure" ||
        error.code === "setup_intent_authentication_failure") { return data.msgAuthentication; }
    if (SHOWN_CODES.indexOf(reason) !== -1) {
      // data-msg-insufficient_funds is dataset.msgInsufficient_funds
      return data["msg" + reason.charAt(0).toUpperCase() + reason.slice(1)] || data.msgGeneric;
    }
    if (error.type === "api_connection_error") { return data.msgNetwork; }
    return data.msgGeneric;
  }

  function reportDecline() {
    return fetch(data.declinedUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": data.csrf }
    }).then(function (r) { return r.ok ? r.json() : {}; }).catch(function () { return {}; });
  }

  function showError(error) {
    message.textContent = messageFor(error);
    message.hidden = false;
    status.textContent = "";
    button.textContent = idleLabel;
    if (error.type === "card_error") {
      reportDecline().then(function (answer) {
        if (answer.blocked) { message.textContent = data.msgBlocked; button.disabled = true; return; }
        button.disabled = false;
        busy = false;
      });
      return;
    }
    button.disabled = false;
    busy = false;
  }

  // The SEPA Direct Debit mandate is for a reader paying by SEPA: where the
  // reader may choose, it shows while SEPA is the method chosen in the element.
  var methods = (data.methods || "").split(" ").filter(Boolean);
  var mandate = document.getElementById("sepa-mandate");
  function methodChosen(type) {
    if (!mandate || methods.length < 2) { return; }
    mandate.hidden = type !== "sepa_debit";
    if (mandate.hidden) { button.removeAttribute("aria-describedby"); }
    else { button.setAttribute("aria-describedby", mandate.id); }
  }

  var stripe = Stripe(data.publishableKey, { locale: data.locale });
  var elements = null;
  if (data.mode !== "authenticate") {
    elements = stripe.elements({ clientSecret: data.clientSecret, locale: data.locale });
    var element = elements.create("payment", {
      // The first method is the one chosen when the element appears.
      paymentMethodOrder: methods,
      defaultValues: { billingDetails: { email: data.email, name: data.name } }
    });
    element.on("change", function (event) {
      if (event.value && event.value.type) { methodChosen(event.value.type); }
    });
    element.mount("#payment-element");
    methodChosen(methods[0]);
  }

  function confirm() {
    var params = {
      return_url: data.returnUrl,
      payment_method_data: { billing_details: { email: data.email, name: data.name || undefined } }
    };
    if (data.mode === "authenticate") {
      return stripe.handleNextAction({ clientSecret: data.clientSecret });
    }
    return elements.submit().then(function (result) {
      if (result.error) { return result; }
      var args = { elements: elements, confirmParams: params, redirect: "if_required" };
      return data.mode === "setup" ? stripe.confirmSetup(args) : stripe.confirmPayment(args);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }  // a double click confirms once
    busy = true;
    button.disabled = true;
    button.textContent = button.dataset.busyLabel;
    message.hidden = true;
    confirm().then(function (result) {
      if (result.error && result.error.code === "payment_intent_unexpected_state") {
        // Already paid (say, in another tab): the thank-you page will say so.
        window.location.assign(data.returnUrl);
        return;
      }
      if (result.error) { showError(result.error); return; }
      // The server asks Stripe itself before it says "thank you".
      window.location.assign(data.returnUrl);
    }).catch(function () {
      showError({ type: "api_connection_error" });
    });
  });
})();
