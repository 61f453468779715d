import { Button } from "@mantine/core";
import { useTranslation } from "react-i18next";
import { useNavigate } from "react-router-dom";

/** Opens a client's sections ("режим администрирования клиента" in the seed). */
export function OpenClientButton({ clientId }: { clientId: number }) {
  const navigate = useNavigate();
  const { t } = useTranslation();
  return (
    <Button
      size="xs"
      variant="light"
      onClick={(e) => {
        e.stopPropagation();
        navigate(`/clients/${clientId}/home`);
      }}
    >
      {t("app.cabinet")}
    </Button>
  );
}
