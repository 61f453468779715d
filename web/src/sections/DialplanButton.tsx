// The "Диалплан" button of a number (seed figure 2): opens the number's graphical editor.
import { Button } from "@mantine/core";
import { IconSitemap } from "@tabler/icons-react";
import { useNavigate } from "react-router-dom";
import { useText } from "../crud/text";
import type { Row, TabProps } from "../crud/types";

function DialplanLink({ clientId, kind, row, size }: { clientId: number | null; kind: string; row: Row; size: "compact-xs" | "sm" }) {
  const text = useText();
  const navigate = useNavigate();
  return (
    <Button
      size={size}
      variant="light"
      leftSection={<IconSitemap size={14} />}
      aria-label={`${text(["Диалплан", "Dialplan"])} ${row.number}`}
      onClick={(e) => {
        e.stopPropagation();
        navigate(`/clients/${clientId ?? row.client_id}/${kind}/${row.id}/dialplan`);
      }}
    >
      {text(["Диалплан", "Dialplan"])}
    </Button>
  );
}

/** For a list column: `render: dialplanCell("internal-numbers")`. */
export function dialplanCell(kind: string) {
  function Cell(row: Row) {
    return <DialplanLink clientId={null} kind={kind} row={row} size="compact-xs" />;
  }
  return Cell;
}

/** For a form's `extra`: the button below the tabs of an existing number. */
export function dialplanExtra(kind: string) {
  function Extra({ clientId, row }: TabProps) {
    return (
      <div style={{ marginTop: 16 }}>
        <DialplanLink clientId={clientId} kind={kind} row={row} size="sm" />
      </div>
    );
  }
  return Extra;
}
