// "Remind me later" carries what the reader is looking at right now, not
// what the page was first loaded with: the link is rebuilt from the form.
// Without JavaScript the link still carries what the page was loaded with.
(function () {
  "use strict";
  var link = document.getElementById("remind-link");
  var form = document.getElementById("ask-form");
  if (!link || !form) { return; }
  link.addEventListener("click", function () {
    var url = new URL(link.href, window.location.href);
    var frequency = form.querySelector("input[name=frequency]:checked");
    var currency = form.querySelector("#currency");
    var custom = form.querySelector("#custom_amount");
    var preset = form.querySelector("fieldset.amounts:not([disabled]) input[name=amount]:checked");
    if (frequency) { url.searchParams.set("frequency", frequency.value); }
    if (currency) { url.searchParams.set("currency", currency.value); }
    var amount = (custom && custom.value.trim()) || (preset && preset.value) || "";
    if (amount) { url.searchParams.set("amount", amount); } else { url.searchParams.delete("amount"); }
    // The article the reader came from (the ask page itself is cached, so
    // the server cannot put it in the link).
    if (/^https?:/.test(document.referrer)) { url.searchParams.set("source", document.referrer.slice(0, 500)); }
    link.href = url.toString();
  });
})();
