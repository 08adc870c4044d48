// Small progressive enhancements: copy buttons and confirmation prompts. The pages work without it.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// "Type the name to confirm": the submit button stays disabled until the typed text matches.
document.querySelectorAll("form[data-confirm-name]").forEach((form) => {
  const input = form.querySelector("input[name=confirm]");
  const button = form.querySelector("button[type=submit]");
  if (!input || !button) return;
  const sync = () => { button.disabled = input.value.trim() !== form.dataset.confirmName; };
  input.addEventListener("input", sync);
  sync();
});
