import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.vnpt.xml.base.Content;
import com.vnpt.xml.base.header.Header;
import com.vnpt.xml.base.header.Organization;
import com.vnpt.xml.base.header.ResponseFor;
import com.vnpt.xml.base.header.StaffInfo;
import com.vnpt.xml.status.Status;
import com.vnpt.xml.status.builder.StatusXmlBuilder;
import com.vnpt.xml.status.header.MessageStatus;
import com.vnpt.xml.status.parser.StatusXmlParser;
import com.vpcp.services.AgencyServiceImp;
import com.vpcp.services.KnobstickServiceImp;
import com.vpcp.services.VnptProperties;
import com.vpcp.services.model.GetChangeStatusResult;
import com.vpcp.services.model.GetEdocResult;
import com.vpcp.services.model.GetReceivedEdocResult;
import com.vpcp.services.model.Knobstick;
import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Drives a VDXP endpoint with VNPT's real SDK (SDKVXP 2.0.1) and edXML builder (EdXML102), unchanged,
 * as an agency's document-management software does. One SDK call (or ServiceTest's receive loop)
 * per run; the result objects the SDK returns are printed as one JSON line for the test to read.
 *
 * Usage: java -cp "build:third_party/vdxp/vdxp-sdk/*" VdxpSdk ENDPOINT SYSTEMID SECRET COMMAND ARGS...
 *   send FROM FILE [TO_JSON] [messagetype]   sendEdoc
 *   list [messagetype]                       getReceivedEdocList
 *   get DOCID DIR                            getEdoc (the SDK writes DIR/yyyy/M/DOCID.edxml)
 *   ack DOCID STATUS                         updateStatus (done | fail | processing)
 *   sent [DOCID]                             getSentEdocList
 *   loop DIR                                 ServiceTest's loop on one service object: list, get, ack
 *   agencies | sync                          getAgenciesList | getSynchronizeUnit
 *   register JSON | delete CODE              registerAgency | deleteAgency
 * Without the endpoint triple (first argument "-"):
 *   build-status FROM RESPONSE_FOR_ORGAN DOCUMENT_ID CODE STATUSCODE DESCRIPTION OUT_DIR   (VNPT's StatusXmlBuilder)
 *   parse-status FILE                        (VNPT's StatusXmlParser)
 */
public final class VdxpSdk {
    private static final Gson GSON = new GsonBuilder().serializeNulls().create();

    public static void main(String[] args) throws Exception {
        if (args[0].equals("-")) {
            offline(args);
            return;
        }
        VnptProperties props = new VnptProperties(args[0], args[1], args[2], System.getProperty("java.io.tmpdir"), 10, 3);
        String command = args[3];
        KnobstickServiceImp knobsticks = new KnobstickServiceImp(props);
        AgencyServiceImp agencies = new AgencyServiceImp(props);
        Object result;
        switch (command) {
            case "send": {
                Map<String, Object> json = new LinkedHashMap<>();
                json.put("from", args[4]);
                json.put("servicetype", "eDoc");
                json.put("messagetype", args.length > 7 ? args[7] : "edoc");
                if (args.length > 6 && !args[6].isEmpty()) {
                    json.put("to", GSON.fromJson(args[6], Object.class));
                }
                result = knobsticks.sendEdoc(GSON.toJson(json), args[5]);
                break;
            }
            case "list":
                result = knobsticks.getReceivedEdocList(
                        "{\"servicetype\":\"eDoc\",\"messagetype\":\"" + (args.length > 4 ? args[4] : "edoc") + "\"}");
                break;
            case "get":
                result = knobsticks.getEdoc("{\"filePath\":\"" + args[5] + "\",\"docId\":\"" + args[4] + "\"}");
                break;
            case "ack":
                // As ServiceTest writes it: the id unquoted, read by Gson's lenient parser.
                result = knobsticks.updateStatus("{\"status\":\"" + args[5] + "\",\"docId\":" + args[4] + "}");
                break;
            case "sent":
                result = knobsticks.getSentEdocList(args.length > 4
                        ? "{\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\",\"docId\":\"" + args[4] + "\"}"
                        : "{\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\"}");
                break;
            case "loop":
                result = receiveLoop(knobsticks, args[4]);
                break;
            case "agencies":
                result = agencies.getAgenciesList("{}");
                break;
            case "sync":
                result = agencies.getSynchronizeUnit("{}");
                break;
            case "register":
                result = agencies.registerAgency("{}", args[4]);
                break;
            case "delete":
                result = agencies.deleteAgency("{\"AgencyCode\":\"" + args[4] + "\"}");
                break;
            default:
                throw new IllegalArgumentException("unknown command " + command);
        }
        System.out.println(GSON.toJson(result));
    }

    /** VNPT ServiceTest's loop: one service object (sticky headers), list, then get and ack each. */
    private static List<Map<String, Object>> receiveLoop(KnobstickServiceImp service, String dir) {
        List<Map<String, Object>> handled = new ArrayList<>();
        GetReceivedEdocResult listed = service.getReceivedEdocList("{\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\"}");
        if (listed == null || listed.getKnobsticks() == null) {
            return handled;
        }
        for (Knobstick item : listed.getKnobsticks()) {
            GetEdocResult got = service.getEdoc("{\"filePath\":\"" + dir + "\",\"docId\":\"" + item.getId() + "\"}");
            String outcome = got != null && "OK".equals(got.getStatus()) ? "done" : "fail";
            GetChangeStatusResult acked = service.updateStatus("{\"status\":\"" + outcome + "\",\"docId\":" + item.getId() + "}");
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("item", item);
            row.put("get", got == null ? null : got.getStatus());
            row.put("dataLength", got == null || got.getData() == null ? -1 : got.getData().length());
            row.put("ack", acked == null ? null : acked.getStatus());
            handled.add(row);
        }
        return handled;
    }

    private static void offline(String[] args) throws Exception {
        switch (args[1]) {
            case "build-status": {
                SimpleDateFormat day = new SimpleDateFormat("yyyy/MM/dd");
                String documentId = args[4];
                String[] parts = documentId.split(",", 3);
                ResponseFor responseFor = new ResponseFor(args[3], parts.length == 3 ? parts[2] : args[5],
                        parts.length == 3 ? day.parse(parts[1]) : new java.util.Date(), documentId);
                Organization from = new Organization(args[2], "Văn thư", "Cơ quan " + args[2], "", "", "", "", "");
                StaffInfo staff = new StaffInfo();
                MessageStatus message = new MessageStatus(responseFor, from, args[6], args[7], staff);
                message.setTimestamp(new java.util.Date());
                Content content = StatusXmlBuilder.build(new Status(new Header(message)), args[8]);
                System.out.println(GSON.toJson(Map.of("path", content.getContent().getPath())));
                return;
            }
            case "parse-status": {
                try (InputStream in = new FileInputStream(args[2])) {
                    Status status = StatusXmlParser.parse(in);
                    MessageStatus message = (MessageStatus) status.getHeader().getMessageHeader();
                    Map<String, Object> out = new LinkedHashMap<>();
                    out.put("from", message.getFrom().getOrganId());
                    out.put("statusCode", message.getStatusCode());
                    out.put("description", message.getDescription());
                    out.put("responseForOrganId", message.getResponseFor().getOrganId());
                    out.put("responseForDocumentId", message.getResponseFor().getDocumentId());
                    System.out.println(GSON.toJson(out));
                }
                return;
            }
            default:
                throw new IllegalArgumentException("unknown command " + args[1]);
        }
    }
}
