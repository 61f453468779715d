// The classifier's Контакты tab (CLS-1): its contacts listed, created and edited in place.
import { Modal } from "@mantine/core";
import { useState } from "react";
import { ResourceForm } from "../crud/ResourceForm";
import { ResourceList } from "../crud/ResourceList";
import { useText } from "../crud/text";
import type { Row, TabProps } from "../crud/types";
import { contacts } from "./contacts";

export function ContactsTab({ clientId, row }: TabProps) {
  const text = useText();
  const [open, setOpen] = useState<Row | "new" | null>(null);
  return (
    <>
      <ResourceList
        section={contacts}
        clientId={clientId}
        heading={false}
        query={{ classifier_id: Number(row.id) }}
        onOpen={(r) => setOpen(r ?? "new")}
      />
      <Modal opened={open !== null} onClose={() => setOpen(null)} title={text("tabs.contacts")} size="lg">
        {open !== null && (
          <ResourceForm
            section={contacts}
            clientId={clientId}
            id={open === "new" ? undefined : String(open.id)}
            fixed={{ classifier_id: Number(row.id) }}
            onClose={() => setOpen(null)}
          />
        )}
      </Modal>
    </>
  );
}
