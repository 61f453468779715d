// A custom tab listing the children of the object being edited (a classifier's contacts, a
// tariff's rates): the generic list filtered by the parent, created and edited in a modal.
import { Modal } from "@mantine/core";
import { useState, type ComponentType } from "react";
import { ResourceForm } from "./ResourceForm";
import { ResourceList } from "./ResourceList";
import { useText } from "./text";
import type { Row, SectionDef, TabProps } from "./types";

export function childListTab(section: SectionDef, parentField: string): ComponentType<TabProps> {
  function ChildList({ clientId, row }: TabProps) {
    const text = useText();
    const [open, setOpen] = useState<Row | "new" | null>(null);
    const parent = { [parentField]: Number(row.id) };
    return (
      <>
        <ResourceList section={section} clientId={clientId} heading={false} query={parent} onOpen={(r) => setOpen(r ?? "new")} />
        <Modal opened={open !== null} onClose={() => setOpen(null)} title={text(section.title)} size="lg">
          {open !== null && (
            <ResourceForm
              section={section}
              clientId={clientId}
              id={open === "new" ? undefined : String(open.id)}
              fixed={parent}
              onClose={() => setOpen(null)}
            />
          )}
        </Modal>
      </>
    );
  }
  return ChildList;
}
