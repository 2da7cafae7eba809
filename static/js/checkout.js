// The payment step: Stripe's Payment Element, confirmed in the page.
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

  // Decline reasons that must never be shown: telling a fraudster that a
  // card is reported stolen helps them, so these read as a plain decline.
  var HIDDEN_REASONS = ["fraudulent", "lost_card", "stolen_card", "pickup_card",
    "restricted_card", "merchant_blacklist", "security_violation", "do_not_honor",
    "transaction_not_allowed", "invalid_account", "new_account_information_available"];
  var SHOWN_CODES = ["insufficient_funds", "expired_card", "incorrect_cvc",
    "incorrect_number", "processing_error"];

  function messageFor(error) {
    var reason = error.decline_code || error.code || "";
    if (error.type === "validation_error") { return error.message || data.msgIncomplete; }
    if (error.code === "payment_intent_authentication_failure") { return data.msgAuthentication; }
    if (HIDDEN_REASONS.indexOf(reason) !== -1) { return data.msgGeneric; }
    if (SHOWN_CODES.indexOf(reason) !== -1) {
      // data-msg-insufficient_funds is dataset.msgInsufficient_funds
      return data["msg" + reason.charAt(0).toUpperCase() + reason.slice(1)] || data.msgGeneric;
    }
    if (error.type === "api_connection_error") { return data.msgNetwork; }
    return data.msgGeneric;
  }

  function showError(text) {
    message.textContent = text;
    message.hidden = false;
    status.textContent = "";
    button.disabled = false;
    button.textContent = idleLabel;
    busy = false;
  }

  var stripe = Stripe(data.publishableKey, { locale: data.locale });
  var elements = stripe.elements({ clientSecret: data.clientSecret, locale: data.locale });
  var paymentElement = elements.create("payment", {
    defaultValues: { billingDetails: { email: data.email, name: data.name } }
  });
  paymentElement.mount("#payment-element");

  var busy = false;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }  // a double click confirms once
    busy = true;
    button.disabled = true;
    button.textContent = button.dataset.busyLabel;
    message.hidden = true;
    elements.submit().then(function (result) {
      if (result.error) { showError(messageFor(result.error)); return null; }
      return stripe.confirmPayment({
        elements: elements,
        confirmParams: {
          return_url: data.returnUrl,
          payment_method_data: { billing_details: { email: data.email, name: data.name || undefined } }
        },
        redirect: "if_required"
      });
    }).then(function (result) {
      if (!result) { return; }
      if (result.error) { showError(messageFor(result.error)); return; }
      // The server asks Stripe itself before it says "thank you".
      window.location.assign(data.returnUrl);
    }).catch(function () {
      showError(data.msgNetwork);
    });
  });
})();
