// A form inside a page's form (a billing account's payment inside the client's page): HTML
// forbids nested <form>s, so this is a labelled group where Enter submits this part only.
import type { ReactNode } from "react";

export function SubForm({ label, onSubmit, children }: { label: string; onSubmit: () => void; children: ReactNode }) {
  return (
    <div
      role="form"
      aria-label={label}
      onKeyDown={(e) => {
        const target = e.target as HTMLElement;
        if (e.key !== "Enter" || target.tagName !== "INPUT") return;
        // Not the page's form: that would save the client instead.
        e.preventDefault();
        e.stopPropagation();
        onSubmit();
      }}
    >
      {children}
    </div>
  );
}
